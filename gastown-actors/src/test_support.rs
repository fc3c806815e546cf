//! Not a public API: helpers shared by the test files that drive a town through real turns
//! (`gastown-actors/tests/turns_local.rs`, `work_local.rs`, the workspace's
//! `tests/docker_turns.rs`, `tests/docker_work.rs`). They
//! panic on failure, as test code does, and may change at any time.

use std::path::Path;
use std::time::Duration;

use futures::stream::BoxStream;
use futures::StreamExt;
use gastown_core::store::BeadRecord;
use gastown_core::{AgentId, AgentStatus, BeadId, BeadStatus, RigConfig, RigId, TownStore};

use crate::events::{TownEvent, TownEventRecord};
use crate::town::TownHandle;
use crate::turn::MayorReply;

/// Waits up to `guard` for the first event matching `wanted`; panics if none comes.
pub async fn wait_for_event(
    events: &mut BoxStream<'static, TownEventRecord>,
    guard: Duration,
    wanted: impl Fn(&TownEventRecord) -> bool,
) -> TownEventRecord {
    tokio::time::timeout(guard, async {
        loop {
            let record = events.next().await.expect("the town's event stream ended");
            if wanted(&record) {
                return record;
            }
        }
    })
    .await
    .expect("the event did not come")
}

/// A predicate: the mayor's status changed to `status`.
pub fn mayor_status_is(status: AgentStatus) -> impl Fn(&TownEventRecord) -> bool {
    move |r| {
        r.agent == Some(AgentId::mayor()) && r.event == TownEvent::AgentStatusChanged { status }
    }
}

/// Prompts the mayor and waits up to `guard` for the reply; panics on a failed turn.
pub async fn reply_of(town: &TownHandle, prompt: &str, guard: Duration) -> MayorReply {
    let turn = town.prompt_mayor(prompt).await.unwrap();
    tokio::time::timeout(guard, turn.reply())
        .await
        .expect("the turn hung")
        .unwrap()
}

/// The mayor's status in the town store under `state`.
pub fn mayor_status(state: &Path) -> AgentStatus {
    let store = TownStore::open(&state.join("town.db")).unwrap();
    store.agent(&AgentId::mayor()).unwrap().unwrap().status
}

/// True when some text column of some table of the SQLite file at `db` contains `needle`
/// (how a test finds a reply in a `kilo.db` snapshot without knowing kilo's schema).
pub fn sqlite_contains(db: &Path, needle: &str) -> bool {
    let conn = rusqlite::Connection::open(db).unwrap();
    let names = |sql: &str| -> Vec<String> {
        conn.prepare(sql)
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    names("SELECT name FROM sqlite_master WHERE type = 'table'")
        .iter()
        .any(|table| {
            names(&format!("SELECT name FROM pragma_table_info('{table}')"))
                .iter()
                .any(|column| {
                    let sql = format!(
                        "SELECT count(*) FROM \"{table}\" WHERE CAST(\"{column}\" AS TEXT) LIKE ?1"
                    );
                    conn.query_row(&sql, [format!("%{needle}%")], |r| r.get::<_, i64>(0))
                        .unwrap_or(0)
                        > 0
                })
        })
}

/// A git repository with one commit (`README.md`) on `main` at `dir/id`, as a rig.
pub fn git_rig(dir: &Path, id: &str) -> RigConfig {
    let repo = dir.join(id);
    std::fs::create_dir_all(&repo).expect("creating the rig's directory");
    let git = |args: &[&str]| {
        let out = std::process::Command::new("git")
            .arg("-C")
            .arg(&repo)
            .args(["-c", "user.name=t", "-c", "user.email=t@t"])
            .args(args)
            .output()
            .expect("running git");
        assert!(out.status.success(), "git {args:?}: {out:?}");
    };
    git(&["init", "-q", "-b", "main"]);
    std::fs::write(repo.join("README.md"), "# rig\n").expect("writing README.md");
    git(&["add", "."]);
    git(&["commit", "-q", "-m", "first"]);
    RigConfig::new(
        RigId::new(id).expect("a valid rig id"),
        repo.to_string_lossy().into_owned(),
    )
}

/// Polls the bead every 200 ms until its status is `wanted`, for up to `guard`; panics
/// with the bead's last state otherwise.
pub async fn wait_for_bead(
    town: &TownHandle,
    bead: &BeadId,
    wanted: BeadStatus,
    guard: Duration,
) -> BeadRecord {
    let deadline = tokio::time::Instant::now() + guard;
    loop {
        let b = town
            .bead(bead)
            .expect("reading the bead")
            .expect("the bead exists");
        if b.status == wanted {
            return b;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "bead never {wanted:?}: {b:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
