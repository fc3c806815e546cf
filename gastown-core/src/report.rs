//! The startup report `ensure_mayor` returns, and the decision it records.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::phase::StartupPhase;

/// What `ensure_mayor` decided, with Kilo Gastown's outcome names (Kilo Gastown PR #3122;
/// ARCHITECTURE.md, *Decision tree*), recorded as the `mayor.ensure_decision` event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EnsureDecision {
    /// The mayor was working or waiting and its SDK server answered a health probe: nothing to do.
    ShortCircuitWarm,
    /// The mayor was idle with a live SDK server: nothing to start.
    ShortCircuitIdle,
    /// The town believed the mayor ran, but its SDK process or session was gone: start again.
    SdkDeadRedispatch,
    /// No live mayor: a fresh start.
    FreshDispatch,
    /// The town was paused (frozen, not stopped): its container was resumed and the live
    /// mayor answered a health probe. This project's tier between running and stopped
    /// (`ARCHITECTURE.md`, *Lifecycle timings*); not one of Kilo Gastown's names.
    ResumePaused,
}

impl EnsureDecision {
    /// Kilo Gastown's name (`short_circuit_warm`, `short_circuit_idle`, `sdk_dead_redispatch`,
    /// `fresh_dispatch`).
    pub fn as_str(self) -> &'static str {
        match self {
            EnsureDecision::ShortCircuitWarm => "short_circuit_warm",
            EnsureDecision::ShortCircuitIdle => "short_circuit_idle",
            EnsureDecision::SdkDeadRedispatch => "sdk_dead_redispatch",
            EnsureDecision::FreshDispatch => "fresh_dispatch",
            EnsureDecision::ResumePaused => "resume_paused",
        }
    }

    /// True when the decision starts the agent (runs the phases).
    pub fn starts_agent(self) -> bool {
        matches!(
            self,
            EnsureDecision::SdkDeadRedispatch | EnsureDecision::FreshDispatch
        )
    }
}

impl fmt::Display for EnsureDecision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How long one phase took, and when it started relative to the start of the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PhaseTiming {
    /// Which phase.
    pub phase: StartupPhase,
    /// Offset of the phase's start from the request's start, in ms.
    pub start_offset_ms: u64,
    /// Duration of the phase, in ms (0 for a phase that found its work already done,
    /// e.g. the sdk phase of a prewarmed server).
    pub duration_ms: u64,
    /// Attempts the phase needed (1 when it succeeded first time).
    pub attempts: u32,
}

/// What an agent start (or an `ensure_mayor` that found the mayor live) did and how long it took.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StartupReport {
    /// The ensure decision that led to this report.
    pub decision: EnsureDecision,
    /// True when the SDK server was already running with the same config hash (a prewarm or
    /// an earlier start was reused).
    pub prewarmed: bool,
    /// From the request's start to ready, in ms.
    pub total_ms: u64,
    /// The phases that ran, in order (empty for a short circuit).
    pub phases: Vec<PhaseTiming>,
    /// Named timings known when the agent became ready, in ms, under Kilo Gastown's names
    /// (ARCHITECTURE.md, *Telemetry*): `token_mint_ms`, `workspace_created_ms`,
    /// `db_hydrated`, `sdk_ready`, `session_created`, and for the start boot hydration made
    /// `registry_fetch_ms` and `mayor_resume_ms` or `mayor_prewarm_ms`. Work that runs in
    /// the background (`browse_worktree_setup_ms`, `write_agents_md_ms`,
    /// `non_mayor_resume_ms`, `git_credential_refresh_ms`, `refresh_token_ms`) is reported
    /// as tracing events only. Empty for a short circuit.
    #[serde(default)]
    pub timings: BTreeMap<String, u64>,
    /// The latest `kilo.db` snapshot was bad and the previous verified one was restored
    /// (`SnapshotStore::load_with_fallback`).
    #[serde(default)]
    pub snapshot_fallback: bool,
    /// The SDK server came from a warm pool: a brand-new town claimed a server booted
    /// before it existed (`ARCHITECTURE.md`, *Warm pool*). False for a cold start, also
    /// one that fell back from a pool that had no server this town could use.
    #[serde(default)]
    pub pooled: bool,
}

impl StartupReport {
    /// A report for a request that found the agent live and ran no phase.
    pub fn short_circuit(decision: EnsureDecision, total_ms: u64) -> Self {
        Self {
            decision,
            prewarmed: true,
            total_ms,
            phases: Vec::new(),
            timings: BTreeMap::new(),
            snapshot_fallback: false,
            pooled: false,
        }
    }

    /// The duration of `phase` in ms, if it ran.
    pub fn phase_ms(&self, phase: StartupPhase) -> Option<u64> {
        self.phases
            .iter()
            .find(|t| t.phase == phase)
            .map(|t| t.duration_ms)
    }
}
