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

/// A child host process for the chaos tests: the test binary run again as the single test
/// `test_name`, which reads one command per stdin line and answers each with a line holding
/// `CHAOS <words…>`. Killed when dropped.
pub struct ChildHost {
    child: tokio::process::Child,
    stdin: tokio::process::ChildStdin,
    lines: tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
    guard: Duration,
}

impl std::fmt::Debug for ChildHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChildHost")
            .field("pid", &self.child.id())
            .finish_non_exhaustive()
    }
}

impl ChildHost {
    /// Starts `test_name` of this test binary with `envs`; each answer is awaited for at
    /// most `guard`.
    pub fn spawn(test_name: &str, envs: &[(&str, &std::ffi::OsStr)], guard: Duration) -> Self {
        use tokio::io::AsyncBufReadExt;
        let mut command =
            tokio::process::Command::new(std::env::current_exe().expect("this test binary"));
        command
            .args(["--exact", test_name, "--nocapture"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true);
        for (key, value) in envs {
            command.env(key, value);
        }
        let mut child = command.spawn().expect("starting the child host");
        let stdin = child.stdin.take().expect("piped stdin");
        let lines = tokio::io::BufReader::new(child.stdout.take().expect("piped stdout")).lines();
        Self {
            child,
            stdin,
            lines,
            guard,
        }
    }

    /// Sends `command` and returns the words of its `CHAOS` answer.
    pub async fn ask(&mut self, command: &str) -> Vec<String> {
        use tokio::io::AsyncWriteExt;
        self.stdin
            .write_all(format!("{command}\n").as_bytes())
            .await
            .expect("writing to the child host");
        let answer = tokio::time::timeout(self.guard, async {
            loop {
                let line = self
                    .lines
                    .next_line()
                    .await
                    .expect("reading the child host");
                let line = line.unwrap_or_else(|| panic!("the host died on {command:?}"));
                // libtest may print `test <name> ... ` before it on the line.
                if let Some((_, rest)) = line.split_once("CHAOS ") {
                    return rest.split(' ').map(str::to_owned).collect::<Vec<_>>();
                }
            }
        })
        .await;
        answer.unwrap_or_else(|_| panic!("no answer to {command:?}"))
    }

    /// Waits for the host to exit on its own (after a `shutdown` command).
    pub async fn wait(mut self) {
        let _ = self.child.wait().await;
    }

    /// SIGKILL, as a crash: nothing of the host runs its cleanup.
    pub async fn crash(mut self) {
        self.child.kill().await.expect("killing the child host");
    }
}
