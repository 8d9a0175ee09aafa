//! Datasets for the text classifier (placeholder: being written).
