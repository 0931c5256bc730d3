//! Class names for the class picker: ImageNet's 1,000 labels for 1,000-class models, the emoji
//! categories for the built-in model, numbers otherwise.

use crate::worker::execute::ModelInfo;

const IMAGENET: &str = include_str!("../../assets/imagenet_classes.txt");

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

pub fn class_names(model: &ModelInfo) -> Vec<String> {
    let Some(n) = model.num_classes else {
        return Vec::new();
    };
    if n == 1000 {
        return IMAGENET.lines().map(str::to_string).collect();
    }
    if n == EMOJI_CATEGORIES.len() && model.name.contains("emoji") {
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
    fn imagenet_labels_are_complete_and_searchable() {
        let names: Vec<String> = IMAGENET.lines().map(str::to_string).collect();
        assert_eq!(names.len(), 1000);
        assert_eq!(names[145], "king penguin");
        assert_eq!(search(&names, "PENGUIN"), vec![145]);
        assert_eq!(search(&names, "145"), vec![145]);
    }
}
