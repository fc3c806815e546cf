//! The runtime conformance suite (`gastown_core::conformance`) against [`LocalRuntime`]:
//! real host processes under a temporary root. One test per check, so every failure shows.

use gastown_core::conformance::{self, HttpServerCommand};
use gastown_core::{CommandSpec, ContainerPath, TownId};
use gastown_runtime_local::LocalRuntime;
use tempfile::TempDir;

fn runtime() -> (TempDir, LocalRuntime) {
    let root = tempfile::tempdir().expect("tempdir");
    let rt = LocalRuntime::new(root.path().to_owned());
    (root, rt)
}

fn town(name: &str) -> TownId {
    TownId::new(format!("conf-{name}")).unwrap()
}

/// busybox's httpd where busybox is installed, else Python's http.server.
fn http_server() -> Box<HttpServerCommand> {
    let on_path = |name: &str| {
        std::env::var_os("PATH")
            .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(name).is_file()))
    };
    if on_path("busybox") {
        Box::new(conformance::busybox_httpd)
    } else {
        Box::new(
            |host: &str, port: u16, dir: &ContainerPath| -> CommandSpec {
                conformance::python_http_server(host, port, dir)
            },
        )
    }
}

macro_rules! check {
    ($($name:ident),* $(,)?) => {$(
        #[tokio::test]
        async fn $name() {
            let (_root, rt) = runtime();
            conformance::$name(&rt, &town(stringify!($name))).await;
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
    let (_root, rt) = runtime();
    let server = http_server();
    conformance::check_port_reachable(&rt, &town("port"), server.as_ref()).await;
}

/// `run_all` itself, on one runtime shared by every check (as a backend's CI would run it).
#[tokio::test]
async fn run_all() {
    let (_root, rt) = runtime();
    let server = http_server();
    conformance::run_all(&rt, "all", server.as_ref()).await;
}
