//! The town's one telemetry vocabulary: every event name the actors emit, as constants,
//! and the helpers that emit them.
//!
//! Names are the Gastown cold-start analysis's timing names (`ARCHITECTURE.md`,
//! *Telemetry*), kept as they are so dashboards built on Kilo Gastown's instrumentation read
//! ours. Every event is a `tracing` event at `info` (phase timings) or `debug` level whose
//! message is its name, with the fields `town`, `agent`, `role` and, for timings, `ms`.
//! Each one is emitted by the code its name describes: a phase's timing when that phase
//! ends, the refresh names by the alarm's refresh, never by a caller that merely waited.

use std::collections::BTreeMap;

use gastown_core::{AgentId, EnsureDecision, Role, StartupPhase, TownId};

/// `token` phase: credentials resolved and the container token minted locally.
pub const TOKEN_MINT_MS: &str = "token_mint_ms";
/// The alarm's live container-token refresh into a warm container.
pub const REFRESH_TOKEN_MS: &str = "refresh_token_ms";
/// Boot hydration: reading the registry from the town store.
pub const REGISTRY_FETCH_MS: &str = "registry_fetch_ms";
/// Boot hydration: the registered mayor resumed (container start to ready).
pub const MAYOR_RESUME_MS: &str = "mayor_resume_ms";
/// Boot hydration: the other registered agents resumed in the background.
pub const NON_MAYOR_RESUME_MS: &str = "non_mayor_resume_ms";
/// Boot hydration: the unregistered mayor prewarmed.
pub const MAYOR_PREWARM_MS: &str = "mayor_prewarm_ms";
/// `worktrees` phase: the agent's workspace repository made (any role).
pub const WORKSPACE_CREATED_MS: &str = "workspace_created_ms";
/// The mayor's browse worktrees set up or refreshed in the background.
pub const BROWSE_WORKTREE_SETUP_MS: &str = "browse_worktree_setup_ms";
/// The mayor's `AGENTS.md` written after its browse worktrees.
pub const WRITE_AGENTS_MD_MS: &str = "write_agents_md_ms";
/// The background refresh of every git credential source.
pub const GIT_CREDENTIAL_REFRESH_MS: &str = "git_credential_refresh_ms";
/// `hydrate` phase: the agent's `kilo.db` restored (or found) before its server starts.
pub const DB_HYDRATED: &str = "db_hydrated";
/// `sdk` phase: the SDK server answers its health check.
pub const SDK_READY: &str = "sdk_ready";
/// `session` phase: a session resumed or created.
pub const SESSION_CREATED: &str = "session_created";
/// Waking a paused town: the container's resume (this project's paused tier).
pub const CONTAINER_RESUME_MS: &str = "container_resume_ms";
/// Pausing an idle town: every agent snapshotted, then the container frozen.
pub const CONTAINER_PAUSE_MS: &str = "container_pause_ms";
/// A caller's `ensure_mayor` answered with a ready mayor.
pub const MAYOR_READY: &str = "mayor.ready";
/// Boot hydration's mayor start finished with nobody waiting for it.
pub const MAYOR_PREWARM_COMPLETE: &str = "mayor.prewarm_complete";
/// The `ensure_mayor` decision, with its outcome (`short_circuit_warm`, …).
pub const MAYOR_ENSURE_DECISION: &str = "mayor.ensure_decision";

/// The one table from a startup phase to its telemetry name (and its key in
/// [`StartupReport::timings`](gastown_core::StartupReport::timings)).
pub const fn phase_name(phase: StartupPhase) -> &'static str {
    match phase {
        StartupPhase::Token => TOKEN_MINT_MS,
        StartupPhase::Hydrate => DB_HYDRATED,
        StartupPhase::Worktrees => WORKSPACE_CREATED_MS,
        StartupPhase::Sdk => SDK_READY,
        StartupPhase::Session => SESSION_CREATED,
    }
}

/// A finished start's [`StartupReport::timings`](gastown_core::StartupReport::timings), in
/// ms: each phase's duration under its [`phase_name`], and for a start boot hydration made
/// (`boot` = (the agent was registered, the registry read's ms)) [`REGISTRY_FETCH_MS`] and
/// the whole start, `total_ms`, as [`MAYOR_RESUME_MS`] (registered) or
/// [`MAYOR_PREWARM_MS`].
pub(crate) fn run_timings(
    phases: &[gastown_core::PhaseTiming],
    boot: Option<(bool, u64)>,
    total_ms: u64,
) -> BTreeMap<String, u64> {
    let mut timings: BTreeMap<String, u64> = phases
        .iter()
        .map(|t| (phase_name(t.phase).to_owned(), t.duration_ms))
        .collect();
    if let Some((registered, registry_ms)) = boot {
        timings.insert(REGISTRY_FETCH_MS.into(), registry_ms);
        let name = if registered {
            MAYOR_RESUME_MS
        } else {
            MAYOR_PREWARM_MS
        };
        timings.insert(name.into(), total_ms);
    }
    timings
}

/// Who an event is about: the fields every event carries.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Subject<'a> {
    pub(crate) town: &'a TownId,
    /// The agent's id, or `-` for a town-wide event.
    pub(crate) agent: &'a str,
    /// The agent's role, or `town` for a town-wide event.
    pub(crate) role: &'static str,
}

impl<'a> Subject<'a> {
    /// An agent of `town`.
    pub(crate) fn agent(town: &'a TownId, agent: &'a AgentId, role: Role) -> Self {
        Self {
            town,
            agent: agent.as_str(),
            role: role.as_str(),
        }
    }

    /// The town itself (the alarm's refreshes, boot hydration's background resume).
    pub(crate) fn town(town: &'a TownId) -> Self {
        Self {
            town,
            agent: "-",
            role: "town",
        }
    }
}

/// Emits the timing `name` (one of this module's constants) of `ms` milliseconds.
pub(crate) fn timing(name: &'static str, who: Subject<'_>, ms: u64) {
    tracing::info!(
        town = %who.town, agent = who.agent, role = who.role, event = name, ms, "{name}"
    );
}

/// Emits a phase's timing under its name from [`phase_name`], with its attempt count and
/// start offset in the run (ms).
pub(crate) fn phase(who: Subject<'_>, timing: &gastown_core::PhaseTiming) {
    let name = phase_name(timing.phase);
    tracing::info!(
        town = %who.town, agent = who.agent, role = who.role, event = name,
        phase = %timing.phase, ms = timing.duration_ms, start_offset_ms = timing.start_offset_ms,
        attempts = timing.attempts, "{name}"
    );
}

/// Emits the `ensure_mayor` decision.
pub(crate) fn decision(who: Subject<'_>, decision: EnsureDecision) {
    tracing::info!(
        town = %who.town, agent = who.agent, role = who.role, event = MAYOR_ENSURE_DECISION,
        outcome = decision.as_str(), "{MAYOR_ENSURE_DECISION}"
    );
}

/// Emits `mayor.ready` (a caller got a ready mayor) or `mayor.prewarm_complete` (boot
/// hydration's start finished), with the total in ms.
pub(crate) fn mayor_done(who: Subject<'_>, prewarm: bool, decision: EnsureDecision, ms: u64) {
    let name = if prewarm {
        MAYOR_PREWARM_COMPLETE
    } else {
        MAYOR_READY
    };
    tracing::info!(
        town = %who.town, agent = who.agent, role = who.role, event = name,
        decision = decision.as_str(), ms, "{name}"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_phase_has_a_distinct_name() {
        let names: std::collections::BTreeSet<_> =
            StartupPhase::ALL.iter().map(|p| phase_name(*p)).collect();
        assert_eq!(names.len(), StartupPhase::ALL.len());
    }

    fn timing(phase: StartupPhase, duration_ms: u64) -> gastown_core::PhaseTiming {
        gastown_core::PhaseTiming {
            phase,
            duration_ms,
            start_offset_ms: 0,
            attempts: 1,
        }
    }

    #[test]
    fn run_timings_name_each_phase_and_only_a_boot_start_adds_its_own() {
        let phases = [
            timing(StartupPhase::Token, 3),
            timing(StartupPhase::Sdk, 40),
        ];
        let plain = run_timings(&phases, None, 50);
        let expected: BTreeMap<String, u64> =
            [(TOKEN_MINT_MS.to_owned(), 3), (SDK_READY.to_owned(), 40)].into();
        assert_eq!(plain, expected);

        let resumed = run_timings(&phases, Some((true, 7)), 50);
        assert_eq!(resumed[REGISTRY_FETCH_MS], 7);
        assert_eq!(resumed[MAYOR_RESUME_MS], 50);
        assert!(!resumed.contains_key(MAYOR_PREWARM_MS));

        let prewarmed = run_timings(&phases, Some((false, 2)), 60);
        assert_eq!(prewarmed[MAYOR_PREWARM_MS], 60);
        assert!(!prewarmed.contains_key(MAYOR_RESUME_MS));
        assert_eq!(prewarmed.len(), 4);
    }
}
