//! Class names for the app's class picker and the CLI's `--class`: ImageNet's 1,000 labels for
//! 1,000-class models, the emoji categories for the built-in model, numbers otherwise. A leaf: the
//! app and the CLI use it, it uses nothing of theirs.

const IMAGENET: &str = include_str!("../assets/imagenet_classes.txt");

/// The built-in model's classes: the dataset's emoji categories, in label order.
pub const EMOJI_CATEGORIES: [&str; 10] = [
    "Activities",
    "Animals & Nature",
    "Component",
    "Flags",
    "Food & Drink",
    "Objects",
    "People & Body",
    "Smileys & Emotion",
    "Symbols",
    "Travel & Places",
];

/// The names of a model's classes (`model_name` tells the built-in emoji models).
pub fn class_names(model_name: &str, num_classes: Option<usize>) -> Vec<String> {
    let Some(n) = num_classes else {
        return Vec::new();
    };
    if n == 1000 {
        return IMAGENET.lines().map(str::to_string).collect();
    }
    if n == EMOJI_CATEGORIES.len() && model_name.contains("emoji") {
        return EMOJI_CATEGORIES.iter().map(|s| s.to_string()).collect();
    }
    (0..n).map(|i| format!("class {i}")).collect()
}

/// The class selected when a model loads: Smileys for the emoji model, else the first.
pub fn default_class(names: &[String]) -> u32 {
    names
        .iter()
        .position(|n| n == "Smileys & Emotion")
        .unwrap_or(0) as u32
}

/// A class given as its number or by name: the name itself, or the one class whose name contains the
/// text (case-insensitively). The error lists what matched, or says the range.
pub fn resolve_class(names: &[String], given: &str) -> Result<u32, String> {
    let given = given.trim();
    if let Ok(i) = given.parse::<u32>() {
        return match names.len() {
            n if (i as usize) < n => Ok(i),
            n => Err(format!(
                "class {i} is out of range: the model has classes 0..{}",
                n - 1
            )),
        };
    }
    let lower = given.to_lowercase();
    if let Some(i) = names.iter().position(|n| n.to_lowercase() == lower) {
        return Ok(i as u32);
    }
    match search(names, given)[..] {
        [i] => Ok(i as u32),
        [] => Err(format!(
            "no class is called `{given}` (give a number 0..{} or a name)",
            names.len() - 1
        )),
        ref many => {
            let shown: Vec<String> = many
                .iter()
                .take(6)
                .map(|&i| format!("{i} {}", names[i]))
                .collect();
            Err(format!(
                "`{given}` matches {} classes ({}{}): give more of the name, or the number",
                many.len(),
                shown.join(", "),
                if many.len() > 6 { ", …" } else { "" }
            ))
        }
    }
}

/// Indices of the classes whose name (or number) contains `filter`, case-insensitively.
pub fn search(names: &[String], filter: &str) -> Vec<usize> {
    let f = filter.trim().to_lowercase();
    names
        .iter()
        .enumerate()
        .filter(|(i, n)| f.is_empty() || n.to_lowercase().contains(&f) || i.to_string() == f)
        .map(|(i, _)| i)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_class_is_found_by_number_or_by_name() {
        let emoji = class_names("cmpaint-emoji32", Some(10));
        assert_eq!(resolve_class(&emoji, "smileys"), Ok(7));
        assert_eq!(resolve_class(&emoji, "Food & Drink"), Ok(4));
        assert_eq!(resolve_class(&emoji, "3"), Ok(3));
        assert!(
            resolve_class(&emoji, "10")
                .unwrap_err()
                .contains("out of range")
        );
        assert!(
            resolve_class(&emoji, "unicorns")
                .unwrap_err()
                .contains("no class is called")
        );
        let imagenet = class_names("cd_imagenet64_l2", Some(1000));
        assert_eq!(resolve_class(&imagenet, "king penguin"), Ok(145));
        assert_eq!(
            resolve_class(&imagenet, "penguin"),
            Ok(145),
            "the one class that holds it"
        );
        assert!(
            resolve_class(&imagenet, "dog")
                .unwrap_err()
                .contains("classes (")
        );
    }

    #[test]
    fn imagenet_labels_are_complete_and_searchable() {
        let names: Vec<String> = IMAGENET.lines().map(str::to_string).collect();
        assert_eq!(names.len(), 1000);
        assert_eq!(names[145], "king penguin");
        assert_eq!(search(&names, "PENGUIN"), vec![145]);
        assert_eq!(search(&names, "145"), vec![145]);
    }
}
