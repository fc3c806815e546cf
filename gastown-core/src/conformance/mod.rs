//! The conformance suite: what every [`ContainerRuntime`] backend must do (the trait's
//! `# Contract`), as a flat list of checks, split by area:
//!
//! | area | checks |
//! |---|---|
//! | [`lifecycle`] | start, adopt, concurrent starts, stop, remove, a stopped container |
//! | [`exec`] | exit codes, output, missing programs, env isolation, cwd, paths |
//! | [`processes`] | a reachable port, output lines, unread output, kill with grace, one labelled process per agent |
//! | [`files`] | round trips, missing files, path validation |
//! | [`stat`] | kinds and sizes without reading contents, symlinks, paused and stopped containers |
//! | [`pause`] | pause/resume lifecycle and status, a frozen process, a server after resume, stop and remove of a paused container |
//!
//! Modelled on arrow-rs object_store's `integration.rs`: each `check_*` takes the runtime
//! under test, a town id it owns for the duration of the check, and the backend's
//! [`Capabilities`]. A check first removes any container left over for that town (a failed
//! earlier run), and removes the town again when it passes. Checks are test code: they
//! panic (assert) on failure, with a message that names the check.
//!
//! # Using it from a backend
//!
//! [`conformance_tests!`](crate::conformance_tests) writes one test per check (so every
//! failure shows) plus one that runs [`run_all`] — the list of checks lives only here:
//!
//! ```text
//! use gastown_core::conformance::{Capabilities, Fixture};
//!
//! async fn fixture(check: &'static str) -> Option<Fixture> {
//!     let rt = MyRuntime::new();
//!     let caps = Capabilities::full(gastown_core::conformance::busybox_httpd);
//!     Some(Fixture::new(Arc::new(rt), TownId::new(check).ok()?, caps))
//! }
//!
//! gastown_core::conformance_tests!(fixture = fixture);
//! ```
//!
//! # Capabilities
//!
//! Backends differ only in [`Capabilities`]: a backend without a shell (the simulated
//! runtime) still runs every check, and the parts that need one are skipped with a line
//! on stderr.
//!
//! # Programs the checks use
//!
//! Only POSIX `sh` and applets both real backends have: the Docker image is a static
//! busybox (applets in `/bin`) plus git; the local backend takes the same names from the
//! host's `PATH`. Every command gets `PATH=`[`SEARCH_PATH`] explicitly (commands inherit
//! nothing). The HTTP server of [`check_port_reachable`] differs per host, so it is a
//! capability ([`HttpServerCommand`]); [`busybox_httpd`] fits both real backends when
//! busybox is installed.
//!
//! # Waiting
//!
//! No check asserts on wall-clock time. Where a check waits for something (a server to
//! answer, a process to be reaped), it polls with a generous bound ([`WAIT_BOUND`]) so a
//! loaded machine is slow, not failing; the bound only turns a hang into a failure.

pub mod exec;
pub mod files;
pub mod lifecycle;
pub mod pause;
pub mod processes;
pub mod stat;
mod support;

use std::any::Any;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::command::CommandSpec;
use crate::ids::TownId;
use crate::path::ContainerPath;
use crate::runtime::ContainerRuntime;

pub use exec::{
    check_cwd, check_env_isolation, check_exec_exit_codes, check_exec_output,
    check_paths_in_args_and_env, check_program_not_found,
};
pub use files::{check_file_round_trip, check_missing_file, check_path_validation};
pub use lifecycle::{
    check_concurrent_start, check_idempotent_start, check_lifecycle, check_stop_and_remove_absent,
    check_stop_kills_every_process, check_stopped_container_rejects,
};
pub use pause::{
    check_pause_lifecycle, check_paused_process_makes_no_progress,
    check_paused_server_answers_after_resume, check_stop_and_remove_paused,
};
pub use processes::{
    check_kill_with_grace, check_labelled_spawn_replaces_the_agents_process, check_output_lines,
    check_port_reachable, check_unread_output_does_not_block,
};
pub use stat::check_stat;

/// The `PATH` every check's command gets: where `sh` and the busybox applets live in the
/// Docker image (`/bin`) and on a usual host (`/usr/bin`, `/bin`).
pub const SEARCH_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// The longest a check waits for something to happen (a server to answer, a process to be
/// reaped, output to arrive) before it fails: 60 s. A hang guard, not a timing assertion.
pub const WAIT_BOUND: Duration = Duration::from_secs(60);

/// Environment variables a container engine may add to a process's environment on its own
/// (never copied from the caller's host): Docker puts `HOSTNAME` in every container's
/// environment, and runc sets `HOME` (from `/etc/passwd`, else `/`) when it is unset.
/// [`check_env_isolation`] tolerates these names and nothing else it did not set.
pub const BACKEND_ENV_ALLOWANCE: &[&str] = &["HOSTNAME", "HOME"];

/// Builds the command of a tiny HTTP server for [`check_port_reachable`]: given the host to
/// bind (the runtime's [`sdk_bind_host`](ContainerRuntime::sdk_bind_host)), a port, and the
/// container directory to serve, a command that serves that directory's files over HTTP in
/// the foreground until killed.
pub type HttpServerCommand = fn(&str, u16, &ContainerPath) -> CommandSpec;

/// An [`HttpServerCommand`] for busybox's `httpd` applet, run as `busybox httpd -f -p
/// HOST:PORT -h DIR` (`-f`: stay in the foreground). Works in the Docker image and on a
/// host with busybox installed.
pub fn busybox_httpd(host: &str, port: u16, dir: &ContainerPath) -> CommandSpec {
    CommandSpec::new("busybox")
        .args(["httpd", "-f", "-p"])
        .arg(format!("{host}:{port}"))
        .arg("-h")
        .arg(dir)
        .env("PATH", SEARCH_PATH)
}

/// An [`HttpServerCommand`] for `python3 -m http.server --bind HOST PORT`, run in `dir`.
/// For hosts without busybox.
pub fn python_http_server(host: &str, port: u16, dir: &ContainerPath) -> CommandSpec {
    CommandSpec::new("python3")
        .args(["-m", "http.server", "--bind", host])
        .arg(port.to_string())
        .cwd(dir.clone())
        .env("PATH", SEARCH_PATH)
}

/// What a backend can do beyond the [`ContainerRuntime`] contract itself: the only way
/// backends differ in the suite (object_store passes such differences as `bool`s too).
/// Every check runs on every backend; the parts a backend lacks the capability for are
/// skipped with a line on stderr.
#[derive(Debug, Clone, Copy, Default)]
#[non_exhaustive]
pub struct Capabilities {
    /// Runs POSIX `sh` scripts and the usual utilities (`cat`, `env`, `printf`, `sleep`,
    /// `mkdir`) to completion, with their real output and exit codes. True for the local
    /// and Docker runtimes; false for the simulated runtime, whose `exec` interprets only
    /// `mkdir`, `rm`, `true` and `git`.
    pub shell: bool,
    /// How to run an HTTP server in a container, for [`check_port_reachable`]; `None` for a
    /// backend without a network (the simulated runtime).
    pub http_server: Option<HttpServerCommand>,
    /// Pauses and resumes containers ([`ContainerRuntime::can_pause`] is true): the
    /// [`pause`] checks run. True for the local, Docker and simulated runtimes; a backend
    /// without it only has its `pause` and `resume` checked to be
    /// [`Error::Unsupported`](crate::Error::Unsupported).
    pub pause: bool,
    /// Records labelled processes and keeps one per agent
    /// ([`ContainerRuntime::spawn_labelled`], [`ContainerRuntime::adopt`]): the labelled
    /// spawn check runs. False unless set ([`with_records`](Self::with_records)); the
    /// local and Docker runtimes have it.
    pub records: bool,
}

impl Capabilities {
    /// A real backend: a shell, `http_server` for the port checks, and pause.
    pub fn full(http_server: HttpServerCommand) -> Self {
        Self {
            shell: true,
            http_server: Some(http_server),
            pause: true,
            records: false,
        }
    }

    /// Sets [`Capabilities::records`].
    pub fn with_records(mut self, records: bool) -> Self {
        self.records = records;
        self
    }

    /// Sets [`Capabilities::pause`].
    pub fn with_pause(mut self, pause: bool) -> Self {
        self.pause = pause;
        self
    }

    /// Sets [`Capabilities::shell`].
    pub fn with_shell(mut self, shell: bool) -> Self {
        self.shell = shell;
        self
    }

    /// Sets [`Capabilities::http_server`].
    pub fn with_http_server(mut self, http_server: Option<HttpServerCommand>) -> Self {
        self.http_server = http_server;
        self
    }
}

/// What one generated conformance test runs on: the runtime, the town the check owns, the
/// backend's capabilities, and whatever must outlive the check (a temporary root, a
/// cleanup guard). Made by the backend's fixture function for
/// [`conformance_tests!`](crate::conformance_tests).
pub struct Fixture {
    // Field order is drop order: the runtime goes first (ending its processes), then the
    // guard (removing its directory or containers).
    runtime: Arc<dyn ContainerRuntime>,
    town: TownId,
    capabilities: Capabilities,
    guard: Option<Box<dyn Any + Send>>,
}

impl fmt::Debug for Fixture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fixture")
            .field("runtime", &self.runtime.name())
            .field("town", &self.town)
            .field("capabilities", &self.capabilities)
            .finish_non_exhaustive()
    }
}

impl Fixture {
    /// A fixture for `town` on `runtime`.
    pub fn new(
        runtime: Arc<dyn ContainerRuntime>,
        town: TownId,
        capabilities: Capabilities,
    ) -> Self {
        Self {
            runtime,
            town,
            capabilities,
            guard: None,
        }
    }

    /// Keeps `guard` alive until the check has ended, and drops it after the runtime.
    pub fn with_guard(mut self, guard: impl Any + Send) -> Self {
        self.guard = Some(Box::new(guard));
        self
    }

    /// The runtime under test.
    pub fn runtime(&self) -> &dyn ContainerRuntime {
        self.runtime.as_ref()
    }

    /// The town the check owns (for [`run_all`], the prefix of its towns).
    pub fn town(&self) -> &TownId {
        &self.town
    }

    /// The backend's capabilities.
    pub fn capabilities(&self) -> &Capabilities {
        &self.capabilities
    }
}

/// Runs every check against `rt`, one after another, each on its own town
/// `<town_prefix>-<check>` (so `town_prefix` must be a valid [`TownId`] of at most 40
/// characters).
///
/// # Panics
/// When a check fails, or `town_prefix` makes an invalid town id.
pub async fn run_all(rt: &dyn ContainerRuntime, town_prefix: &str, caps: &Capabilities) {
    let town = |name: &str| {
        TownId::new(format!("{town_prefix}-{name}"))
            .unwrap_or_else(|e| panic!("conformance: bad town prefix {town_prefix:?}: {e}"))
    };
    check_lifecycle(rt, &town("lifecycle"), caps).await;
    check_idempotent_start(rt, &town("idempotent"), caps).await;
    check_concurrent_start(rt, &town("concurrent"), caps).await;
    check_stop_and_remove_absent(rt, &town("absent"), caps).await;
    check_exec_exit_codes(rt, &town("exit-codes"), caps).await;
    check_exec_output(rt, &town("exec-output"), caps).await;
    check_program_not_found(rt, &town("not-found"), caps).await;
    check_env_isolation(rt, &town("env"), caps).await;
    check_cwd(rt, &town("cwd"), caps).await;
    check_paths_in_args_and_env(rt, &town("paths"), caps).await;
    check_port_reachable(rt, &town("port"), caps).await;
    check_output_lines(rt, &town("output"), caps).await;
    check_unread_output_does_not_block(rt, &town("unread"), caps).await;
    check_kill_with_grace(rt, &town("kill"), caps).await;
    check_labelled_spawn_replaces_the_agents_process(rt, &town("labelled"), caps).await;
    check_file_round_trip(rt, &town("files"), caps).await;
    check_missing_file(rt, &town("missing-file"), caps).await;
    check_path_validation(rt, &town("path-validation"), caps).await;
    check_stat(rt, &town("stat"), caps).await;
    check_stopped_container_rejects(rt, &town("stopped"), caps).await;
    check_stop_kills_every_process(rt, &town("stop-kills"), caps).await;
    check_pause_lifecycle(rt, &town("pause"), caps).await;
    check_paused_process_makes_no_progress(rt, &town("frozen"), caps).await;
    check_paused_server_answers_after_resume(rt, &town("paused-server"), caps).await;
    check_stop_and_remove_paused(rt, &town("stop-paused"), caps).await;
}

/// Writes a backend's conformance tests: one `async fn check_*()` test per check of
/// [`gastown_core::conformance`](crate::conformance), and `run_all()`, which runs them all
/// on one runtime. The list of checks lives only in this macro and [`run_all`] (a unit
/// test keeps the two equal), so a new check reaches every backend.
///
/// `fixture` names an `async fn(&'static str) -> Option<Fixture>`: given the check's name
/// (`"check_lifecycle"`, …, or `"run_all"`), the runtime, town and capabilities to run it
/// on, or `None` to skip (say why on stderr: no engine, no kilo). The test attribute
/// defaults to `#[tokio::test]`; pass another first, e.g.
/// `conformance_tests!(#[tokio::test(start_paused = true)] fixture = sim)`.
#[macro_export]
macro_rules! conformance_tests {
    (fixture = $fixture:path $(,)?) => {
        $crate::conformance_tests!(#[tokio::test] fixture = $fixture);
    };
    (#[$attr:meta] fixture = $fixture:path $(,)?) => {
        $crate::conformance_tests!(@list @tests [$attr] $fixture);

        /// Every check through `run_all`, on one runtime, each on its own town.
        #[$attr]
        async fn run_all() {
            let Some(fixture) = $fixture("run_all").await else {
                return;
            };
            $crate::conformance::run_all(
                fixture.runtime(),
                fixture.town().as_str(),
                fixture.capabilities(),
            )
            .await;
        }
    };
    (@tests [$attr:meta] $fixture:path; $($check:ident),*) => {$(
        #[$attr]
        async fn $check() {
            let Some(fixture) = $fixture(stringify!($check)).await else {
                return;
            };
            $crate::conformance::$check(fixture.runtime(), fixture.town(), fixture.capabilities())
                .await;
        }
    )*};
    (@names; $($check:ident),*) => {
        [$(stringify!($check)),*]
    };
    // The one list of checks: `@list @tests …` / `@list @names` expand with it appended.
    (@list @$($rest:tt)*) => {
        // Braces: the expansion is items for `@tests` and an expression for `@names`.
        $crate::conformance_tests! { @$($rest)*;
            check_lifecycle,
            check_idempotent_start,
            check_concurrent_start,
            check_stop_and_remove_absent,
            check_exec_exit_codes,
            check_exec_output,
            check_program_not_found,
            check_env_isolation,
            check_cwd,
            check_paths_in_args_and_env,
            check_port_reachable,
            check_output_lines,
            check_unread_output_does_not_block,
            check_kill_with_grace,
            check_labelled_spawn_replaces_the_agents_process,
            check_file_round_trip,
            check_missing_file,
            check_path_validation,
            check_stat,
            check_stopped_container_rejects,
            check_stop_kills_every_process,
            check_pause_lifecycle,
            check_paused_process_makes_no_progress,
            check_paused_server_answers_after_resume,
            check_stop_and_remove_paused
        }
    };
}

#[cfg(test)]
mod tests {
    /// The macro's list and `run_all`'s calls name the same checks, in the same order.
    #[test]
    fn the_macro_lists_every_check_run_all_runs() {
        let listed: [&str; 25] = crate::conformance_tests!(@list @names);
        let source = include_str!("mod.rs");
        let body = &source[source.find("pub async fn run_all").unwrap()..];
        let body = &body[..body.find("\n}\n").unwrap()];
        let called: Vec<&str> = body
            .lines()
            .filter_map(|l| l.trim().strip_prefix("check_")?.split('(').next())
            .collect();
        let listed: Vec<&str> = listed.iter().map(|n| &n["check_".len()..]).collect();
        assert_eq!(listed, called);
    }
}
