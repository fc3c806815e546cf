//! [`SimScript`]: how long each simulated operation takes.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// The container path whose writes are charged as a live token refresh
/// ([`SimScript::token_refresh`]) instead of a plain file write:
/// [`CONTAINER_TOKEN_PATH`](crate::token::CONTAINER_TOKEN_PATH)
/// (`/run/gastown/container-token`), where a live refresh writes the new token.
pub const TOKEN_REFRESH_PATH: &str = crate::token::CONTAINER_TOKEN_PATH;

/// The scripted duration of every simulated operation, and which programs exist.
///
/// Each operation of the [`SimulatedRuntime`](super::SimulatedRuntime) and its SDK servers
/// sleeps exactly its duration with `tokio::time::sleep`, so under `tokio::time::pause`
/// virtual time is exact and deterministic. Use whole milliseconds: tokio's timer rounds
/// a deadline up to the next millisecond.
///
/// The defaults ([`SimScript::default`]) are realistic orders of magnitude for a Docker
/// container on a developer machine, as `ARCHITECTURE.md` lists them under "lifecycle
/// timings" with their sources (kilo cold boot "about 4–5 s"); [`SimScript::zero`] makes everything
/// free, so a test can charge only what it looks at. Change single values with the
/// `with_*` setters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimScript {
    /// Creating (or restarting a stopped) container: `start` of a town without a running
    /// container. Default 1500 ms.
    pub container_create: Duration,
    /// Adopting a running container: `start` of a town whose container runs. Default 5 ms.
    pub container_adopt: Duration,
    /// Stopping a running container (`stop`, or `remove` of a running one). Default 500 ms.
    pub container_stop: Duration,
    /// Pausing a running container (`pause`): the engine's freeze. Default 38 ms, the
    /// middle of `docker pause` of a container running kilo as measured here (30–46 ms
    /// through the CLI, kilo 7.7.9); the local runtime's SIGSTOP of the server's process
    /// group measured 0.4–1.7 ms.
    pub container_pause: Duration,
    /// Resuming a paused container (`resume`) until its processes answer again. Default
    /// 44 ms: with [`sdk_health`](Self::sdk_health) it makes 49 ms, the middle of
    /// `docker unpause` → first healthy `GET /global/health` as measured here (37–61 ms,
    /// kilo 7.7.9); the local runtime's SIGCONT → healthy measured 12–24 ms.
    pub container_resume: Duration,
    /// Reading a file (`get_file`, so also `file_exists`). Default 5 ms.
    pub file_read: Duration,
    /// Writing a file (`put_file`; the hydrate restore of a snapshot is one write of
    /// `kilo.db`), except writes to [`TOKEN_REFRESH_PATH`]. Default 20 ms.
    pub file_write: Duration,
    /// A small filesystem command run to completion: `mkdir` (so `create_dir_all`), `rm`,
    /// `true`. Default 5 ms.
    pub mkdir: Duration,
    /// `git init`. Default 10 ms.
    pub git_init: Duration,
    /// `git commit`. Default 15 ms.
    pub git_commit: Duration,
    /// `git clone` (one rig). Default 3000 ms.
    pub git_clone: Duration,
    /// `git fetch`. Default 800 ms.
    pub git_fetch: Duration,
    /// `git worktree …` (`add`, `remove`, …). Default 400 ms.
    pub git_worktree: Duration,
    /// `git checkout` and `git switch`. Default 100 ms.
    pub git_checkout: Duration,
    /// Any other git subcommand. Default 50 ms.
    pub git_other: Duration,
    /// An SDK server's boot: from `spawn` to its `… listening on http://…` line.
    /// Default 4500 ms.
    pub sdk_boot: Duration,
    /// `GET /global/health` on a listening server. Default 5 ms.
    pub sdk_health: Duration,
    /// `GET /session`. Default 10 ms.
    pub sdk_list_sessions: Duration,
    /// `POST /session`. Default 150 ms.
    pub sdk_create_session: Duration,
    /// `POST /session/{id}/message` (`noReply`). Default 50 ms.
    pub sdk_send_message: Duration,
    /// [`ProcessHandle::kill`](crate::ProcessHandle::kill): SIGTERM until the process is
    /// gone; a kill is charged the smaller of this and its grace. Default 100 ms.
    pub process_kill: Duration,
    /// A live token refresh round trip: a `put_file` to [`TOKEN_REFRESH_PATH`].
    /// Default 250 ms.
    pub token_refresh: Duration,
    /// Programs that `spawn` runs as simulated SDK servers (compared by file name, so
    /// `/opt/kilo/bin/kilo` counts as `kilo`). Default `kilo`, `opencode`.
    pub sdk_programs: BTreeSet<String>,
    /// Programs the container has besides the SDK programs (by file name). `exec`
    /// interprets `mkdir`, `rm`, `true` and `git`; the others can only be spawned, as
    /// processes that run until killed. Anything else is
    /// [`Error::ProgramNotFound`](crate::Error::ProgramNotFound). Default `git`, `mkdir`,
    /// `rm`, `true`, `sh`, `sleep`.
    pub installed_programs: BTreeSet<String>,
    /// Programs made to fail: `exec` and `spawn` of them return
    /// [`Error::ProgramNotFound`](crate::Error::ProgramNotFound), for failure-path tests.
    /// Default empty.
    pub fail_programs: BTreeSet<String>,
    /// git subcommands made to fail: they are charged their duration, change nothing, and
    /// exit 128 with a `fatal:` line on stderr. Default empty.
    pub fail_git: BTreeSet<String>,
    /// What a git subcommand prints on stdout, by subcommand (e.g. `rev-list` → `"1\n"`,
    /// so a polecat's branch shows one new commit to the town's work check). Default
    /// empty: subcommands print nothing.
    pub git_stdout: BTreeMap<String, String>,
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn names(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

impl Default for SimScript {
    fn default() -> Self {
        Self {
            container_create: ms(1500),
            container_adopt: ms(5),
            container_stop: ms(500),
            container_pause: ms(38),
            container_resume: ms(44),
            file_read: ms(5),
            file_write: ms(20),
            mkdir: ms(5),
            git_init: ms(10),
            git_commit: ms(15),
            git_clone: ms(3000),
            git_fetch: ms(800),
            git_worktree: ms(400),
            git_checkout: ms(100),
            git_other: ms(50),
            sdk_boot: ms(4500),
            sdk_health: ms(5),
            sdk_list_sessions: ms(10),
            sdk_create_session: ms(150),
            sdk_send_message: ms(50),
            process_kill: ms(100),
            token_refresh: ms(250),
            sdk_programs: names(&["kilo", "opencode"]),
            installed_programs: names(&["git", "mkdir", "rm", "true", "sh", "sleep"]),
            fail_programs: BTreeSet::new(),
            fail_git: BTreeSet::new(),
            git_stdout: BTreeMap::new(),
        }
    }
}

macro_rules! setters {
    ($($field:ident => $setter:ident),* $(,)?) => {
        $(
            #[doc = concat!("Sets [`SimScript::", stringify!($field), "`].")]
            pub fn $setter(mut self, duration: Duration) -> Self {
                self.$field = duration;
                self
            }
        )*
    };
}

impl SimScript {
    /// Every duration zero; the default program sets.
    pub fn zero() -> Self {
        Self {
            container_create: Duration::ZERO,
            container_adopt: Duration::ZERO,
            container_stop: Duration::ZERO,
            container_pause: Duration::ZERO,
            container_resume: Duration::ZERO,
            file_read: Duration::ZERO,
            file_write: Duration::ZERO,
            mkdir: Duration::ZERO,
            git_init: Duration::ZERO,
            git_commit: Duration::ZERO,
            git_clone: Duration::ZERO,
            git_fetch: Duration::ZERO,
            git_worktree: Duration::ZERO,
            git_checkout: Duration::ZERO,
            git_other: Duration::ZERO,
            sdk_boot: Duration::ZERO,
            sdk_health: Duration::ZERO,
            sdk_list_sessions: Duration::ZERO,
            sdk_create_session: Duration::ZERO,
            sdk_send_message: Duration::ZERO,
            process_kill: Duration::ZERO,
            token_refresh: Duration::ZERO,
            ..Self::default()
        }
    }

    /// The physical floor of a cold mayor start: the scripted durations it must pay at
    /// minimum, one after another, whatever the scheduling:
    ///
    /// [`container_create`](Self::container_create) (no container yet)
    /// \+ [`file_write`](Self::file_write) (one upload: the agent's secrets directory on a
    ///   fresh start; a start from a snapshot also restores `kilo.db`)
    /// \+ [`sdk_boot`](Self::sdk_boot) (spawn to the listening line)
    /// \+ [`sdk_health`](Self::sdk_health) (the first health probe, which succeeds)
    /// \+ [`sdk_list_sessions`](Self::sdk_list_sessions) (look for a session to resume)
    /// \+ [`sdk_create_session`](Self::sdk_create_session) (none: create one).
    ///
    /// Nothing else is counted. A real start also pays, on the mayor's path, the small
    /// operations the actors do besides: [`file_read`](Self::file_read) (the "is `kilo.db`
    /// already there" check), and while the workspace does not exist
    /// [`mkdir`](Self::mkdir), [`git_init`](Self::git_init), [`git_commit`](Self::git_commit)
    /// and further [`file_write`](Self::file_write)s (`.gitconfig`, `AGENTS.md`). A test
    /// that asserts "ready at exactly the floor" zeroes those with the `with_*` setters.
    pub fn critical_path(&self) -> Duration {
        self.container_create
            + self.file_write
            + self.sdk_boot
            + self.sdk_health
            + self.sdk_list_sessions
            + self.sdk_create_session
    }

    setters!(
        container_create => with_container_create,
        container_adopt => with_container_adopt,
        container_stop => with_container_stop,
        container_pause => with_container_pause,
        container_resume => with_container_resume,
        file_read => with_file_read,
        file_write => with_file_write,
        mkdir => with_mkdir,
        git_init => with_git_init,
        git_commit => with_git_commit,
        git_clone => with_git_clone,
        git_fetch => with_git_fetch,
        git_worktree => with_git_worktree,
        git_checkout => with_git_checkout,
        git_other => with_git_other,
        sdk_boot => with_sdk_boot,
        sdk_health => with_sdk_health,
        sdk_list_sessions => with_sdk_list_sessions,
        sdk_create_session => with_sdk_create_session,
        sdk_send_message => with_sdk_send_message,
        process_kill => with_process_kill,
        token_refresh => with_token_refresh,
    );

    /// Makes `exec` and `spawn` of `program` fail with
    /// [`Error::ProgramNotFound`](crate::Error::ProgramNotFound).
    pub fn with_failing_program(mut self, program: impl Into<String>) -> Self {
        self.fail_programs.insert(program.into());
        self
    }

    /// Makes `git <subcommand>` exit 128 (see [`SimScript::fail_git`]).
    pub fn with_failing_git(mut self, subcommand: impl Into<String>) -> Self {
        self.fail_git.insert(subcommand.into());
        self
    }

    /// Makes `git <subcommand>` print `stdout` (see [`SimScript::git_stdout`]).
    pub fn with_git_stdout(
        mut self,
        subcommand: impl Into<String>,
        stdout: impl Into<String>,
    ) -> Self {
        self.git_stdout.insert(subcommand.into(), stdout.into());
        self
    }

    /// Adds a program the container has (see [`SimScript::installed_programs`]).
    pub fn with_installed_program(mut self, program: impl Into<String>) -> Self {
        self.installed_programs.insert(program.into());
        self
    }

    /// The scripted duration of `git <subcommand>`.
    pub fn git(&self, subcommand: &str) -> Duration {
        match subcommand {
            "init" => self.git_init,
            "commit" => self.git_commit,
            "clone" => self.git_clone,
            "fetch" => self.git_fetch,
            "worktree" => self.git_worktree,
            "checkout" | "switch" => self.git_checkout,
            _ => self.git_other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn critical_path_sums_exactly_the_six_floor_steps() {
        let s = SimScript::zero()
            .with_container_create(ms(1))
            .with_file_write(ms(2))
            .with_sdk_boot(ms(4))
            .with_sdk_health(ms(8))
            .with_sdk_list_sessions(ms(16))
            .with_sdk_create_session(ms(32))
            // Not on the floor:
            .with_file_read(ms(1000))
            .with_git_clone(ms(1000));
        assert_eq!(s.critical_path(), ms(63));
        assert_eq!(SimScript::default().critical_path(), ms(6185));
    }

    #[test]
    fn git_durations_by_subcommand() {
        let s = SimScript::default();
        assert_eq!(s.git("clone"), s.git_clone);
        assert_eq!(s.git("switch"), s.git_checkout);
        assert_eq!(s.git("rev-parse"), s.git_other);
    }
}
