//! A dry run of a `.pt` checkpoint's pickle before candle's reader sees it.
//!
//! candle's pickle reader builds nested values with no bound: 400 KB of `EMPTY_LIST`s appended into
//! each other make a list 200,000 levels deep, and freeing (or printing) it recurses once per level
//! and overflows the stack — an abort no panic guard catches. A pickle can also ask for a 4 GiB string
//! in five bytes, or clone a memoised value into itself until memory runs out. This pass follows the
//! same opcodes over a stack of sizes only (how deep, how many values), and refuses a pickle that
//! goes past the bounds below before anything is built. Real state dicts are a few levels deep.

use std::io::Read;

/// Deepest nesting of containers accepted (a state dict of tensors is about 6).
pub const MAX_DEPTH: usize = 1000;
/// Most values the pickle may build, counting every clone a memo lookup makes.
pub const MAX_VALUES: u64 = 1 << 24;

/// The shape of one value on the pickle stack: its nesting depth and how many values it holds.
#[derive(Clone, Copy)]
enum Item {
    Mark,
    Value { depth: usize, count: u64 },
}

const LEAF: Item = Item::Value { depth: 0, count: 1 };

/// Checks every `data.pkl` in a `.pt` zip archive. The error is the whole reason, one line.
pub fn check_checkpoint(file: std::fs::File) -> Result<(), String> {
    let unreadable = |e: zip::result::ZipError| {
        format!("truncated or corrupt PyTorch checkpoint (not a readable zip archive: {e})")
    };
    let mut zip = zip::ZipArchive::new(std::io::BufReader::new(file)).map_err(unreadable)?;
    for i in 0..zip.len() {
        let mut entry = zip.by_index(i).map_err(unreadable)?;
        let name = entry.name().map_err(unreadable)?.into_owned();
        if !name.ends_with("data.pkl") {
            continue;
        }
        let limit = crate::file_io::limit::PICKLE;
        let mut bytes = Vec::new();
        (&mut entry)
            .take(limit + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| format!("truncated or corrupt PyTorch checkpoint ({name}: {e})"))?;
        let hostile = |e: String| format!("corrupt or hostile PyTorch checkpoint: {name}: {e}");
        if bytes.len() as u64 > limit {
            return Err(hostile(format!("a pickle larger than {} MiB", limit >> 20)));
        }
        check_pickle(&bytes).map_err(hostile)?;
    }
    Ok(())
}

/// Follows the opcodes candle's reader knows over `bytes`. An opcode it does not know ends the pass:
/// candle stops there with its own error, having built only what came before.
pub fn check_pickle(bytes: &[u8]) -> Result<(), String> {
    let mut r = bytes;
    let mut stack: Vec<Item> = Vec::new();
    let mut memo: std::collections::HashMap<u32, Item> = std::collections::HashMap::new();
    let mut values: u64 = 0;
    loop {
        let Some((&op, rest)) = r.split_first() else {
            return Ok(());
        };
        r = rest;
        let pushed = match op {
            0x80 => skip(&mut r, 1).map(|()| None)?,       // PROTO
            b'K' => skip(&mut r, 1).map(|()| Some(LEAF))?, // BININT1
            b'M' => skip(&mut r, 2).map(|()| Some(LEAF))?, // BININT2
            b'J' => skip(&mut r, 4).map(|()| Some(LEAF))?, // BININT
            b'G' => skip(&mut r, 8).map(|()| Some(LEAF))?, // BINFLOAT
            0x88 | 0x89 | b'N' => Some(LEAF),              // True, False, None
            0x8a => {
                let n = take(&mut r, 1)?[0] as usize; // LONG1
                skip(&mut r, n).map(|()| Some(LEAF))?
            }
            b'X' => {
                let n = u32::from_le_bytes(take(&mut r, 4)?.try_into().expect("4 bytes"));
                skip(&mut r, n as usize).map(|()| Some(LEAF))? // BINUNICODE
            }
            b'c' => {
                line(&mut r)?; // GLOBAL: module and name
                line(&mut r)?;
                Some(LEAF)
            }
            b'(' => Some(Item::Mark),
            b')' | b']' | b'}' => Some(Item::Value { depth: 1, count: 1 }),
            b'Q' => Some(containing(&[pop(&mut stack)?])), // BINPERSID
            b't' | b'd' => Some(containing(&pop_to_mark(&mut stack)?)), // TUPLE, DICT
            0x85..=0x87 => {
                let n = (op - 0x84) as usize; // TUPLE1..3
                let items = (0..n)
                    .map(|_| pop(&mut stack))
                    .collect::<Result<Vec<_>, _>>()?;
                Some(containing(&items))
            }
            // REDUCE, BUILD, NEWOBJ: two values become one that holds both
            b'R' | b'b' | 0x81 => {
                let items = [pop(&mut stack)?, pop(&mut stack)?];
                Some(containing(&items))
            }
            b'a' => {
                let item = pop(&mut stack)?; // APPEND
                add_to_last(&mut stack, &[item])?;
                None
            }
            b's' => {
                let items = [pop(&mut stack)?, pop(&mut stack)?]; // SETITEM
                add_to_last(&mut stack, &items)?;
                None
            }
            b'e' | b'u' => {
                let items = pop_to_mark(&mut stack)?; // APPENDS, SETITEMS
                add_to_last(&mut stack, &items)?;
                None
            }
            b'h' | b'j' => {
                // BINGET, LONG_BINGET: candle clones the value, so it counts again
                match memo.get(&memo_id(op == b'h', &mut r)?) {
                    Some(&item) => Some(item),
                    None => return Ok(()),
                }
            }
            b'q' | b'r' => {
                let id = memo_id(op == b'q', &mut r)?;
                // BINPUT, LONG_BINPUT: candle keeps a clone of the value on top
                let Some(&item) = stack.last() else {
                    return Ok(());
                };
                memo.insert(id, item);
                values = counted(values, item)?;
                None
            }
            b'.' => return Ok(()), // STOP
            _ => return Ok(()),
        };
        if let Some(item) = pushed {
            values = counted(values, item)?;
            stack.push(item);
        }
        if let Some(Item::Value { depth, .. }) = stack.last()
            && *depth > MAX_DEPTH
        {
            return Err(format!("a pickle nested more than {MAX_DEPTH} levels deep"));
        }
    }
}

/// The values built so far, with `item`'s added; an error past [`MAX_VALUES`].
fn counted(values: u64, item: Item) -> Result<u64, String> {
    let Item::Value { count, .. } = item else {
        return Ok(values);
    };
    let values = values.saturating_add(count);
    if values > MAX_VALUES {
        return Err(format!(
            "a pickle that builds more than {MAX_VALUES} values"
        ));
    }
    Ok(values)
}

/// A memo index: one byte (`short`) or four, little-endian.
fn memo_id(short: bool, r: &mut &[u8]) -> Result<u32, String> {
    Ok(if short {
        take(r, 1)?[0] as u32
    } else {
        u32::from_le_bytes(take(r, 4)?.try_into().expect("4 bytes"))
    })
}

fn take<'a>(r: &mut &'a [u8], n: usize) -> Result<&'a [u8], String> {
    if r.len() < n {
        return Err("a truncated pickle".into());
    }
    let (head, rest) = r.split_at(n);
    *r = rest;
    Ok(head)
}

fn skip(r: &mut &[u8], n: usize) -> Result<(), String> {
    take(r, n).map(|_| ())
}

fn line(r: &mut &[u8]) -> Result<(), String> {
    let end = r
        .iter()
        .position(|&b| b == b'\n')
        .ok_or("a truncated pickle")?;
    skip(r, end + 1)
}

/// A value holding `items`: one level deeper than the deepest, as many values as all of them.
fn containing(items: &[Item]) -> Item {
    let (depth, count) = items.iter().fold((0, 1u64), |(d, c), item| match item {
        Item::Value { depth, count } => (d.max(*depth), c.saturating_add(*count)),
        Item::Mark => (d, c),
    });
    Item::Value {
        depth: depth + 1,
        count,
    }
}

/// An APPEND/SETITEM into the container on top of the stack: it grows to hold `items`.
fn add_to_last(stack: &mut [Item], items: &[Item]) -> Result<(), String> {
    let last = stack.last_mut().ok_or("a pickle that appends to nothing")?;
    let Item::Value { depth, count } = *last else {
        return Err("a pickle that appends to a mark".into());
    };
    let Item::Value {
        depth: inner,
        count: added,
    } = containing(items)
    else {
        unreachable!("containing makes a value")
    };
    *last = Item::Value {
        depth: depth.max(inner),
        count: count.saturating_add(added - 1),
    };
    Ok(())
}

fn pop(stack: &mut Vec<Item>) -> Result<Item, String> {
    stack
        .pop()
        .ok_or_else(|| "a pickle that pops an empty stack".into())
}

fn pop_to_mark(stack: &mut Vec<Item>) -> Result<Vec<Item>, String> {
    let mark = stack
        .iter()
        .rposition(|i| matches!(i, Item::Mark))
        .ok_or("a pickle without the mark it needs")?;
    let items = stack.split_off(mark + 1);
    stack.pop();
    Ok(items)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nested_lists(depth: usize) -> Vec<u8> {
        let mut p = vec![0x80, 2];
        p.extend(std::iter::repeat_n(b']', depth));
        p.extend(std::iter::repeat_n(b'a', depth - 1));
        p.push(b'.');
        p
    }

    #[test]
    fn deep_nesting_is_refused_and_shallow_nesting_passes() {
        assert_eq!(
            check_pickle(&nested_lists(200_000)).unwrap_err(),
            "a pickle nested more than 1000 levels deep"
        );
        check_pickle(&nested_lists(MAX_DEPTH)).unwrap();
        // the same depth built by TUPLE1 instead of APPEND
        let mut p = vec![b'N'];
        p.extend(std::iter::repeat_n(0x85u8, 5000));
        assert!(check_pickle(&p).unwrap_err().contains("nested"));
    }

    #[test]
    fn memo_clones_that_multiply_are_refused() {
        // x = [None]; then x = [x, x] thirty times through the memo: 2^30 values from 150 bytes
        let mut p = vec![0x80, 2, b']', b'N', b'a', b'q', 0];
        for _ in 0..30 {
            p.extend([b'(', b'h', 0, b'h', 0, b't', b'q', 0]);
        }
        assert!(check_pickle(&p).unwrap_err().contains("more than"));
    }

    #[test]
    fn a_huge_string_length_is_a_truncation_not_an_allocation() {
        let p = [0x80, 2, b'X', 0xff, 0xff, 0xff, 0xff, b'a'];
        assert_eq!(check_pickle(&p).unwrap_err(), "a truncated pickle");
    }
}
