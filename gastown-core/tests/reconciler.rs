//! The pure reconciler's event rules (`gastown_core::reconciler::reconcile`): each event
//! kind with its bead and agent present, missing, or moved on; and the dispatch retry
//! schedule driven through `reconcile` and `sweep` together.

mod reconciler_support;

use gastown_core::reconciler::{
    reconcile, sweep, Action, Effect, ReconcileEvent, ReconcileState, Reconciled,
};
use gastown_core::store::BeadRecord;
use gastown_core::{AgentStatus, BeadKind, BeadStatus, RigId};
use reconciler_support::*;

fn failed(bead: &str, agent: &str, maybe_accepted: bool) -> ReconcileEvent {
    ReconcileEvent::DispatchFailed {
        bead: bead_id(bead),
        agent: agent_id(agent),
        error: "start refused".into(),
        maybe_accepted,
    }
}

fn checked(bead: &str, agent: &str, commits: u32) -> ReconcileEvent {
    ReconcileEvent::WorkChecked {
        bead: bead_id(bead),
        agent: agent_id(agent),
        branch: format!("polecat/{bead}"),
        commits,
        head: (commits > 0).then(|| "abc123".to_owned()),
    }
}

fn exited(agent: &str) -> ReconcileEvent {
    ReconcileEvent::AgentExited {
        agent: agent_id(agent),
    }
}

/// The bead a `PutBead` action writes for `id`.
fn put(r: &Reconciled, id: &str) -> BeadRecord {
    r.actions
        .iter()
        .find_map(|a| match a {
            Action::PutBead(b) if b.id.as_str() == id => Some(b.clone()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no PutBead for {id} in {:?}", r.actions))
}

fn released_polecat() -> [Action; 2] {
    [
        Action::SetHook {
            agent: agent_id("polecat-1"),
            hook: None,
        },
        Action::SetAgentStatus {
            agent: agent_id("polecat-1"),
            status: AgentStatus::Idle,
        },
    ]
}

#[test]
fn every_event_about_a_missing_bead_or_agent_is_terminal() {
    let state = town();
    let cases = [
        (failed("gone", "polecat-1", false), "bead gone"),
        (failed("gone", "polecat-1", true), "bead gone"),
        (failed("b-1", "ghost", false), "agent ghost"),
        (failed("b-1", "ghost", true), "agent ghost"),
        (checked("gone", "polecat-1", 2), "bead gone"),
        (checked("b-1", "ghost", 2), "agent ghost"),
        (checked("b-1", "ghost", 0), "agent ghost"),
        (exited("ghost"), "agent ghost"),
    ];
    for (event, names) in cases {
        let r = reconcile(&state, &event, NOW);
        let missing = r.missing.as_deref().unwrap_or_else(|| panic!("{event:?}"));
        assert!(missing.contains(names), "{missing}");
        assert!(r.is_empty(), "{event:?}: {r:?}");
    }
}

#[test]
fn a_dispatch_that_may_have_been_accepted_changes_nothing() {
    let r = reconcile(&town(), &failed("b-1", "polecat-1", true), NOW + SEC);
    assert_eq!(r, Reconciled::default());
}

#[test]
fn a_failed_dispatch_releases_the_bead_and_the_agent() {
    let state = town();
    let r = reconcile(&state, &failed("b-1", "polecat-1", false), NOW + SEC);
    assert_eq!(r.missing, None);
    assert!(
        r.effects.is_empty(),
        "the sweep re-dispatches, after the cooldown"
    );
    let bead = put(&r, "b-1");
    assert_eq!(bead.status, BeadStatus::Open);
    assert_eq!(bead.assignee, None);
    assert_eq!(bead.dispatch_attempts, 1);
    assert_eq!(bead.last_dispatch_ms, Some(NOW + SEC));
    assert_eq!(bead.last_error.as_deref(), Some("start refused"));
    assert_eq!(bead.updated_ms, NOW + SEC);
    assert_eq!(
        (bead.title.as_str(), bead.created_ms),
        ("Fix b-1", NOW - 600 * SEC)
    );
    assert_eq!(r.actions[1..], released_polecat());
}

#[test]
fn a_duplicate_or_overtaken_event_counts_once() {
    let mut state = town();
    let first = reconcile(&state, &failed("b-1", "polecat-1", false), NOW);
    state.apply(&first.actions);
    let again = reconcile(&state, &failed("b-1", "polecat-1", false), NOW + SEC);
    assert!(again.is_empty(), "{again:?}");
    assert_eq!(state.beads["b-1"].dispatch_attempts, 1);

    // Re-dispatched to another polecat: the first one's late failure leaves it alone,
    // and does not touch the agent now hooked elsewhere either.
    state.agents.insert(
        agent_id("polecat-2"),
        agent("polecat-2", gastown_core::Role::Polecat, AgentStatus::Idle),
    );
    dispatch(&mut state, "b-1", "polecat-2", NOW + 40 * SEC);
    state.beads.insert(bead_id("b-2"), issue("b-2"));
    dispatch(&mut state, "b-2", "polecat-1", NOW + 40 * SEC);
    let late = reconcile(&state, &failed("b-1", "polecat-1", false), NOW + 41 * SEC);
    assert!(late.is_empty(), "{late:?}");
}

#[test]
fn work_with_commits_goes_to_review_and_opens_a_merge_request() {
    let mut state = town();
    let rig = RigId::new("app").unwrap();
    state.beads.get_mut("b-1").unwrap().rig = Some(rig.clone());
    let r = reconcile(&state, &checked("b-1", "polecat-1", 3), NOW + 60 * SEC);
    assert_eq!(r.missing, None);

    let done = put(&r, "b-1");
    assert_eq!(done.status, BeadStatus::InReview);
    assert_eq!(done.branch.as_deref(), Some("polecat/b-1"));
    assert_eq!(done.head.as_deref(), Some("abc123"));
    assert_eq!(
        done.assignee,
        Some(agent_id("polecat-1")),
        "who did it is kept"
    );

    let mr = put(&r, "b-1-mr");
    assert_eq!(mr.kind, BeadKind::MergeRequest);
    assert_eq!(mr.status, BeadStatus::Open);
    assert_eq!(mr.title, "Review Fix b-1");
    assert_eq!(mr.rig, Some(rig));
    assert_eq!(mr.branch.as_deref(), Some("polecat/b-1"));
    assert_eq!(mr.head.as_deref(), Some("abc123"));
    assert_eq!(mr.source_bead, Some(bead_id("b-1")));
    assert_eq!((mr.assignee, mr.dispatch_attempts), (None, 0));
    assert_eq!(
        (mr.created_ms, mr.updated_ms),
        (NOW + 60 * SEC, NOW + 60 * SEC)
    );

    assert_eq!(
        r.effects,
        [Effect::Dispatch {
            bead: bead_id("b-1-mr"),
            agent: None
        }]
    );
    assert_eq!(r.actions[2..], released_polecat());
}

#[test]
fn work_without_commits_is_a_failed_dispatch() {
    let r = reconcile(&town(), &checked("b-1", "polecat-1", 0), NOW + SEC);
    let bead = put(&r, "b-1");
    assert_eq!(bead.status, BeadStatus::Open);
    assert_eq!(bead.dispatch_attempts, 1);
    assert_eq!(
        bead.last_error.as_deref(),
        Some("no commits on polecat/b-1")
    );
    assert!(r.effects.is_empty());
    assert_eq!(r.actions[1..], released_polecat());
}

#[test]
fn merge_request_ids_avoid_taken_ones_and_stay_short() {
    let mut state = town();
    state.beads.insert(bead_id("b-1-mr"), issue("b-1-mr"));
    let r = reconcile(&state, &checked("b-1", "polecat-1", 1), NOW);
    assert_eq!(put(&r, "b-1-mr-2").source_bead, Some(bead_id("b-1")));

    let long = "L".repeat(64);
    let mut state = ReconcileState::from_records([issue(&long)], town().agents.into_values());
    dispatch(&mut state, &long, "polecat-1", NOW);
    let r = reconcile(&state, &checked(&long, "polecat-1", 1), NOW);
    let mr_id = format!("{}-mr", "L".repeat(61));
    assert_eq!(put(&r, &mr_id).source_bead, Some(bead_id(&long)));
}

#[test]
fn a_second_round_of_work_reuses_the_live_merge_request() {
    let mut state = town();
    let first = reconcile(&state, &checked("b-1", "polecat-1", 1), NOW);
    state.apply(&first.actions);
    // The merge request failed review once; the issue is worked again.
    let mr = state.beads.get_mut("b-1-mr").unwrap();
    mr.dispatch_attempts = 2;
    dispatch(&mut state, "b-1", "polecat-1", NOW + 100 * SEC);
    let second = reconcile(&state, &checked("b-1", "polecat-1", 4), NOW + 200 * SEC);
    let mr = put(&second, "b-1-mr");
    assert_eq!((mr.status, mr.dispatch_attempts), (BeadStatus::Open, 0));
    assert_eq!(mr.updated_ms, NOW + 200 * SEC);
    assert!(!second
        .actions
        .iter()
        .any(|a| matches!(a, Action::PutBead(b) if b.id.as_str() == "b-1-mr-2")));
}

#[test]
fn a_refinery_that_merged_closes_the_merge_request_and_its_issue() {
    let mut state = town();
    let opened = reconcile(&state, &checked("b-1", "polecat-1", 2), NOW);
    state.apply(&opened.actions);
    dispatch(&mut state, "b-1-mr", "refinery-1", NOW + SEC);

    let unmerged = reconcile(&state, &checked("b-1-mr", "refinery-1", 2), NOW + 2 * SEC);
    let mr = put(&unmerged, "b-1-mr");
    assert_eq!((mr.status, mr.dispatch_attempts), (BeadStatus::Open, 1));
    assert_eq!(
        mr.last_error.as_deref(),
        Some("2 commits on polecat/b-1-mr not merged")
    );

    let merged = reconcile(&state, &checked("b-1-mr", "refinery-1", 0), NOW + 2 * SEC);
    assert_eq!(put(&merged, "b-1-mr").status, BeadStatus::Closed);
    assert_eq!(put(&merged, "b-1").status, BeadStatus::Closed);
    assert!(merged.actions.contains(&Action::SetHook {
        agent: agent_id("refinery-1"),
        hook: None
    }));
}

#[test]
fn an_exited_agent_releases_its_bead_and_leaves_the_registry() {
    let r = reconcile(&town(), &exited("polecat-1"), NOW + SEC);
    let bead = put(&r, "b-1");
    assert_eq!((bead.status, bead.assignee), (BeadStatus::Open, None));
    assert_eq!(bead.dispatch_attempts, 1, "so the sweep re-dispatches it");
    assert!(bead.last_error.unwrap().contains("polecat-1 exited"));
    assert_eq!(r.actions[1..3], released_polecat());
    assert_eq!(
        r.actions[3],
        Action::Unregister {
            agent: agent_id("polecat-1")
        }
    );

    // An idle agent with no work only leaves the registry.
    let r = reconcile(&town(), &exited("refinery-1"), NOW);
    assert_eq!(
        r.actions,
        [Action::Unregister {
            agent: agent_id("refinery-1")
        }]
    );
}

/// ARCHITECTURE.md, *Lifecycle timings*: a dispatch known not to have started is retried
/// after a 30 s cooldown, at most 5 attempts in all; then the bead fails.
#[test]
fn five_failed_dispatches_then_the_bead_fails() {
    let mut state = town();
    let mut now = NOW;
    for attempt in 1..=5u32 {
        let r = reconcile(&state, &failed("b-1", "polecat-1", false), now);
        state.apply(&r.actions);
        let bead = &state.beads["b-1"];
        assert_eq!(bead.dispatch_attempts, attempt);
        if attempt == 5 {
            assert_eq!(bead.status, BeadStatus::Failed);
            assert_eq!(bead.last_error.as_deref(), Some("start refused"));
            break;
        }
        assert_eq!(bead.status, BeadStatus::Open);
        let waiting = sweep(&state, now + 29_999, false);
        assert!(waiting
            .effects
            .iter()
            .all(|e| !matches!(e, Effect::Dispatch { .. })));
        now += 30 * SEC;
        let due = sweep(&state, now, false);
        assert!(due.effects.contains(&Effect::Dispatch {
            bead: bead_id("b-1"),
            agent: None
        }));
        dispatch(&mut state, "b-1", "polecat-1", now);
    }
    let after = sweep(&state, now + 3_600 * SEC, false);
    assert!(after
        .effects
        .iter()
        .all(|e| !matches!(e, Effect::Dispatch { .. })));
    assert!(after
        .actions
        .iter()
        .all(|a| !matches!(a, Action::PutBead(_))));
}
