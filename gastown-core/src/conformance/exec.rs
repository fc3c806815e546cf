//! `exec` checks: exit codes, output, missing programs, the environment, the working
//! directory, and container paths as arguments.

use std::collections::BTreeMap;
use std::time::Duration;

use super::support::{
    assert_env, collect_output, finish, fresh, path, read, run_stdout, sh, skipped, start, status,
    true_cmd, wait_exit, SEARCH_PATH, SHELL,
};
use super::Capabilities;
use crate::command::CommandSpec;
use crate::error::Error;
use crate::ids::TownId;
use crate::runtime::{ContainerRuntime, ContainerRuntimeExt, Stream};
use crate::secret::Secret;
use crate::status::{ContainerStatus, ProcessStatus};

/// `exec` reports exit codes as `Ok`, zero and non-zero alike. Without
/// [`Capabilities::shell`], only exit code 0 (`true`) is checked.
pub async fn check_exec_exit_codes(rt: &dyn ContainerRuntime, town: &TownId, caps: &Capabilities) {
    fresh(rt, town).await;
    start(rt, town).await;
    if !caps.shell {
        // `true` is the one program every backend runs to completion.
        let out = rt.exec(town, &true_cmd()).await.expect("exec true");
        assert_eq!((out.exit_code, out.success()), (0, true), "exec true");
        rt.exec_ok(town, &true_cmd()).await.expect("exec_ok true");
        skipped("exit codes other than 0", SHELL);
        return finish(rt, town).await;
    }
    for code in [0, 1, 3, 42, 255] {
        let out = rt
            .exec(town, &sh(&format!("exit {code}")))
            .await
            .unwrap_or_else(|e| panic!("exec exit {code}: {e}"));
        assert_eq!(out.exit_code, code, "exec exit code");
        assert_eq!(out.success(), code == 0);
    }
    let err = rt.exec_ok(town, &sh("echo boom >&2; exit 9")).await;
    match err {
        Err(Error::CommandFailed {
            exit_code,
            stderr_tail,
            ..
        }) => {
            assert_eq!(exit_code, 9);
            assert!(stderr_tail.contains("boom"), "{stderr_tail:?}");
        }
        other => panic!("exec_ok of a failing command: expected CommandFailed, got {other:?}"),
    }
    finish(rt, town).await;
}

/// `exec` keeps stdout and stderr apart and whole (a megabyte on each, interleaved, must not
/// deadlock on full pipes), and gives the command an empty stdin. Without
/// [`Capabilities::shell`], only that `true` prints nothing.
pub async fn check_exec_output(rt: &dyn ContainerRuntime, town: &TownId, caps: &Capabilities) {
    fresh(rt, town).await;
    start(rt, town).await;
    if !caps.shell {
        let out = rt.exec(town, &true_cmd()).await.expect("exec true");
        assert!(
            out.stdout.is_empty() && out.stderr.is_empty(),
            "exec true: {out:?}"
        );
        skipped("exec output", SHELL);
        return finish(rt, town).await;
    }

    let out = rt
        .exec(town, &sh("echo out; echo err >&2; printf 'no-newline'"))
        .await
        .expect("exec output");
    assert_eq!(out.stdout, b"out\nno-newline");
    assert_eq!(out.stderr, b"err\n");

    // 16384 lines of 64 bytes = 1 MiB on each stream.
    let script = format!(
        "line={}; i=0; while [ $i -lt 16384 ]; do echo $line; echo $line >&2; i=$((i+1)); done",
        "x".repeat(63)
    );
    let out = rt.exec(town, &sh(&script)).await.expect("exec big output");
    assert_eq!(out.exit_code, 0);
    assert_eq!(out.stdout.len(), 16384 * 64, "stdout bytes");
    assert_eq!(out.stderr.len(), 16384 * 64, "stderr bytes");

    // stdin is empty (not the caller's terminal): `cat` ends at once with no output.
    let out = rt
        .exec(town, &CommandSpec::new("cat").env("PATH", SEARCH_PATH))
        .await
        .expect("exec cat");
    assert_eq!(
        (out.exit_code, out.stdout.len()),
        (0, 0),
        "stdin must be empty"
    );
    finish(rt, town).await;
}

/// A program that does not exist is [`Error::ProgramNotFound`] from `exec` and `spawn`,
/// and the container keeps running.
pub async fn check_program_not_found(
    rt: &dyn ContainerRuntime,
    town: &TownId,
    caps: &Capabilities,
) {
    fresh(rt, town).await;
    start(rt, town).await;
    let missing = CommandSpec::new("gastown-no-such-program").env("PATH", SEARCH_PATH);
    match rt.exec(town, &missing).await {
        Err(Error::ProgramNotFound { program, .. }) => {
            assert_eq!(program, "gastown-no-such-program")
        }
        other => panic!("exec of a missing program: expected ProgramNotFound, got {other:?}"),
    }
    match rt.spawn(town, &missing).await {
        Err(Error::ProgramNotFound { .. }) => {}
        other => panic!("spawn of a missing program: expected ProgramNotFound, got {other:?}"),
    }
    assert_eq!(status(rt, town).await, ContainerStatus::Running);
    if caps.shell {
        assert_eq!(run_stdout(rt, town, &sh("echo still")).await, "still\n");
    } else {
        rt.exec_ok(town, &true_cmd())
            .await
            .expect("not found: the container still runs commands");
    }
    finish(rt, town).await;
}

/// A process sees exactly the environment of its [`CommandSpec`]: the variables set (a
/// secret included), none set for another process running beside it, nothing from the
/// caller's host; only [`BACKEND_ENV_ALLOWANCE`](super::BACKEND_ENV_ALLOWANCE) may be added by the engine. Checked for
/// `exec` and for `spawn`.
///
/// Needs [`Capabilities::shell`].
pub async fn check_env_isolation(rt: &dyn ContainerRuntime, town: &TownId, caps: &Capabilities) {
    if !caps.shell {
        return skipped("env", SHELL);
    }
    fresh(rt, town).await;
    start(rt, town).await;

    let other = rt
        .spawn(
            town,
            &sh("exec sleep 300")
                .env("GASTOWN_OTHER_ONLY", "other-value")
                .env("GASTOWN_OTHER_SECRET", Secret::new("other-secret-4711")),
        )
        .await
        .expect("env: spawn the other process");

    let mut expected = BTreeMap::from([
        ("PATH".to_owned(), SEARCH_PATH.to_owned()),
        ("GASTOWN_CHECK_PLAIN".to_owned(), "plain value".to_owned()),
        ("GASTOWN_CHECK_SECRET".to_owned(), "s3cret-0815".to_owned()),
        ("HOME".to_owned(), "/home/checker".to_owned()),
    ]);
    let env_cmd = |expected: &BTreeMap<String, String>| {
        let mut cmd = CommandSpec::new("env");
        for (k, v) in expected {
            cmd = if k.ends_with("SECRET") {
                cmd.env(k.clone(), Secret::new(v.clone()))
            } else {
                cmd.env(k.clone(), v.clone())
            };
        }
        cmd
    };

    let out = rt
        .exec_ok(town, &env_cmd(&expected))
        .await
        .expect("env: exec");
    assert_env(&out.stdout_str(), &expected, "exec");

    // Without HOME set: whatever HOME the engine adds, it is not the caller's.
    expected.remove("HOME");
    let spawned = rt
        .spawn(town, &env_cmd(&expected))
        .await
        .expect("env: spawn");
    let lines = collect_output(spawned).await;
    let text: String = lines
        .iter()
        .filter(|l| l.stream == Stream::Stdout)
        .map(|l| format!("{}\n", l.line))
        .collect();
    assert_env(&text, &expected, "spawn");

    other
        .handle
        .kill(Duration::from_secs(5))
        .await
        .expect("env: kill the other process");
    finish(rt, town).await;
}

/// A command runs in its `cwd`, or in the container's `/` without one: a file it writes
/// relative to its cwd shows at the container path (read back with `get_file`, since a
/// backend's `pwd` may print a host path).
///
/// Needs [`Capabilities::shell`].
pub async fn check_cwd(rt: &dyn ContainerRuntime, town: &TownId, caps: &Capabilities) {
    if !caps.shell {
        return skipped("cwd", SHELL);
    }
    fresh(rt, town).await;
    start(rt, town).await;
    let dir = path("/cwd-check/nested dir");
    rt.create_dir_all(town, &dir).await.expect("cwd: mkdir");

    rt.exec_ok(town, &sh("echo exec-here > marker.txt").cwd(dir.clone()))
        .await
        .expect("cwd: exec");
    assert_eq!(
        read(rt, town, &dir.join("marker.txt").unwrap()).await,
        b"exec-here\n"
    );

    rt.exec_ok(town, &sh("echo at-root > cwd-root-marker.txt"))
        .await
        .expect("cwd: exec without cwd");
    assert_eq!(
        read(rt, town, &path("/cwd-root-marker.txt")).await,
        b"at-root\n"
    );

    let spawned = rt
        .spawn(town, &sh("echo spawn-here > spawned.txt").cwd(dir.clone()))
        .await
        .expect("cwd: spawn");
    let handle = spawned.handle.clone();
    collect_output(spawned).await;
    assert_eq!(
        wait_exit(handle.as_ref()).await,
        ProcessStatus::Exited(Some(0))
    );
    assert_eq!(
        read(rt, town, &dir.join("spawned.txt").unwrap()).await,
        b"spawn-here\n"
    );
    finish(rt, town).await;
}

/// Container paths given as [`Word::Path`](crate::Word::Path) in args and env reach the
/// process as paths it can open.
///
/// Needs [`Capabilities::shell`].
pub async fn check_paths_in_args_and_env(
    rt: &dyn ContainerRuntime,
    town: &TownId,
    caps: &Capabilities,
) {
    if !caps.shell {
        return skipped("paths", SHELL);
    }
    fresh(rt, town).await;
    start(rt, town).await;
    let file = path("/data/paths/payload.txt");
    rt.put_file(town, &file, b"payload")
        .await
        .expect("paths: put");

    let by_arg = CommandSpec::new("cat").arg(&file).env("PATH", SEARCH_PATH);
    assert_eq!(run_stdout(rt, town, &by_arg).await, "payload");

    let by_env = sh("cat \"$PAYLOAD\"").env("PAYLOAD", &file);
    assert_eq!(run_stdout(rt, town, &by_env).await, "payload");

    // Written through a path argument, read back through the API.
    let out = path("/data/paths/out.txt");
    let write = sh("echo written > \"$1\"").arg("sh").arg(&out);
    rt.exec_ok(town, &write).await.expect("paths: write");
    assert_eq!(read(rt, town, &out).await, b"written\n");
    finish(rt, town).await;
}
