//! TownStore (being written).
/// Placeholder.
#[derive(Debug)]
pub struct TownStore;
