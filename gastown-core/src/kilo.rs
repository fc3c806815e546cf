//! TODO: kilo (being written).
