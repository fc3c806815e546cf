//! What boot hydration did when a container started.

/// How boot hydration brought the mayor up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MayorBoot {
    /// The mayor was in the registry (it ran when the container last stopped): resumed
    /// first.
    Resumed,
    /// The mayor was not registered: prewarmed before anyone asked.
    Prewarmed,
    /// The container was adopted while running: the mayor's first request adopts its
    /// server; registered workers are resumed in the background.
    AlreadyRunning,
    /// The mayor's start failed; the next `ensure_mayor` retries and returns the error.
    Failed,
}

/// What boot hydration did (`ARCHITECTURE.md`, *Phase path*: mayor first, the others in the
/// background).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootReport {
    /// True when this boot created the container (cold), false when it adopted a running
    /// one (warm).
    pub container_created: bool,
    /// Time to read the registry from the town store, in ms (`registry_fetch_ms`).
    pub registry_fetch_ms: u64,
    /// How the mayor came up.
    pub mayor: MayorBoot,
    /// From the start of boot hydration to the hydration gate opening (the mayor's critical
    /// work done), in ms (`mayor_resume_ms` or `mayor_prewarm_ms`).
    pub mayor_ms: u64,
    /// Non-mayor agents from the registry being resumed in the background.
    pub non_mayor_agents: usize,
}
