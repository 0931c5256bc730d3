//! CLIP's tokenizer from the `vocab.json` and `merges.txt` that Stable Diffusion folders ship, the
//! same ids as transformers' `CLIPTokenizer`: NFC, whitespace runs to one space, lower case; split into
//! words, numbers and punctuation runs; each word's UTF-8 bytes as CLIP's byte characters, the last
//! one marked `</w>`; byte-pair merges by rank; `<|startoftext|>` … `<|endoftext|>`, truncated and
//! padded to the context length (77).

use crate::engine::error::{EngineError, Result};
use regex::Regex;
use std::collections::HashMap;
use std::path::Path;
use unicode_normalization::UnicodeNormalization;

const START: &str = "<|startoftext|>";
const END: &str = "<|endoftext|>";
/// A word's bytes read at most: more than 77 tokens' worth (CLIP's longest tokens are ~16 bytes), and
/// byte-pair merging is quadratic in a word's length.
const MAX_WORD: usize = 2048;
/// CLIP's pre-tokenizer (the contractions, letters, one digit, runs of anything else but spaces).
const SPLIT: &str = r"'s|'t|'re|'ve|'m|'ll|'d|\p{L}+|\p{N}|[^\s\p{L}\p{N}]+";

pub struct ClipTokenizer {
    vocab: HashMap<String, u32>,
    /// (left, right) → rank: lower merges first.
    ranks: HashMap<(String, String), usize>,
    split: Regex,
    byte_chars: [char; 256],
    start: u32,
    end: u32,
    pad: u32,
    pub context: usize,
}

impl ClipTokenizer {
    /// `dir` holds vocab.json and merges.txt (and, optionally, special_tokens_map.json or
    /// tokenizer_config.json naming the pad token: SD 1.x pads with `<|endoftext|>`, SD 2.x with `!`).
    pub fn from_dir(dir: &Path) -> Result<Self> {
        let read = |name: &str| {
            std::fs::read_to_string(dir.join(name)).map_err(|e| {
                EngineError::InvalidInput(format!(
                    "tokenizer: cannot read {}: {e}",
                    dir.join(name).display()
                ))
            })
        };
        let vocab: HashMap<String, u32> = serde_json::from_str(&read("vocab.json")?)
            .map_err(|e| EngineError::InvalidInput(format!("tokenizer: vocab.json: {e}")))?;
        let pad = ["special_tokens_map.json", "tokenizer_config.json"]
            .iter()
            .filter_map(|name| std::fs::read_to_string(dir.join(name)).ok())
            .filter_map(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
            .find_map(|json| match &json["pad_token"] {
                serde_json::Value::String(s) => Some(s.clone()),
                serde_json::Value::Object(o) => o.get("content")?.as_str().map(str::to_owned),
                _ => None,
            });
        Self::new(vocab, &read("merges.txt")?, pad.as_deref().unwrap_or(END))
    }

    /// CLIP's own tokenizer (ViT-L/14's, 49,408 tokens), for a checkpoint that ships none: a
    /// single-file Stable Diffusion 1.x. Its merges are the first 48,894 lines of CLIP's
    /// `bpe_simple_vocab_16e6.txt` (MIT, OpenAI), built in; the vocabulary is made from them as CLIP
    /// makes it — the 256 byte characters in CLIP's byte order, each again with `</w>`, every merge's
    /// result in rank order, then the two special tokens.
    pub fn clip() -> Result<Self> {
        const MERGES: &[u8] = include_bytes!("../../../assets/clip_merges.txt.gz");
        let mut merges = String::new();
        std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(MERGES), &mut merges)
            .map_err(|e| EngineError::InvalidInput(format!("the built-in CLIP merges: {e}")))?;
        let chars = byte_chars();
        let byte_order = (b'!'..=b'~')
            .chain(0xA1..=0xAC)
            .chain(0xAE..=0xFF)
            .chain((0..=255u8).filter(|&b| !matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF)));
        let singles: Vec<String> = byte_order.map(|b| chars[b as usize].to_string()).collect();
        let tokens = singles
            .iter()
            .cloned()
            .chain(singles.iter().map(|c| format!("{c}</w>")))
            .chain(merges.lines().map(|l| l.replace(' ', "")))
            .chain([START.to_owned(), END.to_owned()]);
        let vocab = tokens.enumerate().map(|(i, t)| (t, i as u32)).collect();
        Self::new(vocab, &merges, END)
    }

    /// How many tokens the vocabulary holds (the text encoder's embedding must have as many rows).
    pub fn vocabulary(&self) -> usize {
        self.vocab.len()
    }

    pub fn new(vocab: HashMap<String, u32>, merges: &str, pad: &str) -> Result<Self> {
        let special = |name: &str| {
            vocab.get(name).copied().ok_or_else(|| {
                EngineError::InvalidInput(format!("tokenizer: vocab.json has no `{name}`"))
            })
        };
        let (start, end, pad) = (special(START)?, special(END)?, special(pad)?);
        let mut ranks = HashMap::new();
        for line in merges.lines().filter(|l| !l.starts_with("#version")) {
            if let Some((a, b)) = line.split_once(' ') {
                let rank = ranks.len();
                ranks.entry((a.to_owned(), b.to_owned())).or_insert(rank);
            }
        }
        Ok(Self {
            vocab,
            ranks,
            split: Regex::new(SPLIT).expect("the CLIP split pattern compiles"),
            byte_chars: byte_chars(),
            start,
            end,
            pad,
            context: 77,
        })
    }

    /// The ids the text encoder reads: start, the prompt's tokens (cut to fit), end, padding.
    pub fn encode(&self, prompt: &str) -> Vec<u32> {
        let mut ids = vec![self.start];
        ids.extend(self.tokens(prompt, self.context - 2));
        ids.push(self.end);
        ids.resize(self.context, self.pad);
        ids
    }

    /// The prompt's first `limit` tokens without the start/end marks. The two special tokens typed in
    /// a prompt are read as themselves, as transformers does. Words after the limit are not looked
    /// at (a pasted megabyte costs nothing), and a word is read to at most `MAX_WORD` bytes.
    pub fn tokens(&self, prompt: &str, limit: usize) -> Vec<u32> {
        let mut ids = Vec::new();
        let mut rest = prompt;
        while !rest.is_empty() && ids.len() < limit {
            let next = [START, END]
                .iter()
                .filter_map(|s| rest.find(s).map(|at| (at, *s)))
                .min();
            let (text, special) = match next {
                Some((at, s)) => (&rest[..at], Some(s)),
                None => (rest, None),
            };
            self.encode_text(text, limit, &mut ids);
            match special {
                Some(s) => {
                    ids.push(self.vocab[s]);
                    rest = &rest[text.len() + s.len()..];
                }
                None => break,
            }
        }
        ids
    }

    fn encode_text(&self, text: &str, limit: usize, ids: &mut Vec<u32>) {
        let normal: String = text.nfc().collect();
        let normal = normal
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .to_lowercase();
        for word in self.split.find_iter(&normal) {
            if ids.len() >= limit {
                break;
            }
            let chars: String = word
                .as_str()
                .bytes()
                .take(MAX_WORD)
                .map(|b| self.byte_chars[b as usize])
                .collect();
            for piece in self.byte_pairs(&chars) {
                // Every byte and byte</w> is in CLIP's vocabulary; a merge's result always is.
                if let Some(&id) = self.vocab.get(&piece) {
                    ids.push(id);
                }
            }
        }
    }

    /// Byte-pair encoding of one word: start from its characters (the last with `</w>`) and merge the
    /// lowest-ranked adjacent pair, everywhere it occurs, until no pair is in the merges.
    fn byte_pairs(&self, word: &str) -> Vec<String> {
        let mut parts: Vec<String> = word.chars().map(String::from).collect();
        if let Some(last) = parts.last_mut() {
            last.push_str("</w>");
        }
        loop {
            let best = parts
                .windows(2)
                .filter_map(|w| self.ranks.get(&(w[0].clone(), w[1].clone())))
                .min()
                .copied();
            let Some(best) = best else { break };
            let mut merged = Vec::with_capacity(parts.len());
            let mut i = 0;
            while i < parts.len() {
                if i + 1 < parts.len()
                    && self.ranks.get(&(parts[i].clone(), parts[i + 1].clone())) == Some(&best)
                {
                    merged.push(format!("{}{}", parts[i], parts[i + 1]));
                    i += 2;
                } else {
                    merged.push(parts[i].clone());
                    i += 1;
                }
            }
            parts = merged;
        }
        parts
    }
}

/// GPT-2/CLIP's reversible byte → character table: printable Latin-1 bytes stand for themselves, the
/// others for the characters from U+0100 on, in byte order.
fn byte_chars() -> [char; 256] {
    let printable = |b: u8| matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF);
    let mut table = ['\0'; 256];
    let mut next = 256u32;
    for b in 0..=255u8 {
        table[b as usize] = if printable(b) {
            b as char
        } else {
            next += 1;
            char::from_u32(next - 1).expect("below U+0200")
        };
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pasted megabyte — words or one word — tokenizes to 77 ids (quadratic merging of a whole
    /// megabyte-long word would not finish).
    #[test]
    fn a_huge_prompt_costs_nothing() {
        let mut vocab: HashMap<String, u32> = byte_chars()
            .iter()
            .flat_map(|c| [c.to_string(), format!("{c}</w>")])
            .enumerate()
            .map(|(i, t)| (t, i as u32))
            .collect();
        vocab.insert(START.into(), 512);
        vocab.insert(END.into(), 513);
        let t = ClipTokenizer::new(vocab, "#version: 0.2\na b\n", END).unwrap();
        for prompt in ["ab ".repeat(400_000), "a".repeat(1_000_000)] {
            assert_eq!(t.encode(&prompt).len(), 77);
        }
    }

    /// Known ids of the real vocabulary (openai/clip-vit-large-patch14's tokenizer); the fixture
    /// tests check many more prompts against transformers.
    #[test]
    fn the_built_in_vocabulary_is_clips() {
        let t = ClipTokenizer::clip().unwrap();
        assert_eq!(t.vocabulary(), 49408);
        assert_eq!(
            &t.encode("a photo of a cat")[..7],
            &[49406, 320, 1125, 539, 320, 2368, 49407]
        );
    }

    #[test]
    fn the_byte_table_is_clips() {
        let t = byte_chars();
        assert_eq!(t[b'a' as usize], 'a');
        assert_eq!(t[0], 'Ā'); // U+0100
        assert_eq!(t[b' ' as usize], 'Ġ'); // U+0120, as GPT-2 writes a space
        let distinct: std::collections::HashSet<_> = t.iter().collect();
        assert_eq!(distinct.len(), 256);
    }
}
