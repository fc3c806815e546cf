//! The runtime conformance suite (`gastown_core::conformance`) against [`DockerRuntime`] on
//! a real Docker Engine, with the real agent image. One test per check, so every failure
//! shows; skipped (with a line) when no engine answers, unless `GASTOWN_REQUIRE_DOCKER=1`.

use gastown_core::conformance;
use gastown_runtime_docker::test_support::{prefix, runtime, town, Cleanup};

macro_rules! check {
    ($($name:ident),* $(,)?) => {$(
        #[tokio::test]
        async fn $name() {
            let prefix = prefix("c");
            let Some(rt) = runtime(&prefix).await else { return };
            let town = town(stringify!($name));
            let _cleanup = Cleanup::town(&prefix, &town);
            conformance::$name(&rt, &town).await;
        }
    )*};
}

check!(
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
    check_output_lines,
    check_unread_output_does_not_block,
    check_kill_with_grace,
    check_file_round_trip,
    check_missing_file,
    check_path_validation,
    check_stopped_container_rejects,
    check_stop_kills_every_process,
);

#[tokio::test]
async fn check_port_reachable() {
    let prefix = prefix("c");
    let Some(rt) = runtime(&prefix).await else {
        return;
    };
    let town = town("check_port_reachable");
    let _cleanup = Cleanup::town(&prefix, &town);
    conformance::check_port_reachable(&rt, &town, &conformance::busybox_httpd).await;
}

/// `run_all` itself, on one runtime shared by every check (as CI runs it).
#[tokio::test]
async fn run_all() {
    let prefix = prefix("all");
    let Some(rt) = runtime(&prefix).await else {
        return;
    };
    let _cleanup = Cleanup::prefix(&prefix);
    conformance::run_all(&rt, "all", &conformance::busybox_httpd).await;
}
