//! Running a command to completion in a town's container (engine exec, attached output).

use std::time::Duration;

use bollard::exec::{StartExecOptions, StartExecResults};
use bollard::models::ExecConfig;
use bollard::Docker;
use futures::StreamExt;
use gastown_core::{CommandSpec, ContainerPath, Error, ExecOutput, Result, TownId};

use crate::error::{is_not_found, status_of, Error as DockerError};
use crate::runtime::DockerRuntime;
use crate::wrapper::{wrap, Mode, NOT_FOUND_MARKER, NO_CWD_MARKER};

/// How long to wait for the engine to record an exec's exit after its output ended, in ms.
const EXIT_RECORD_WAIT_MS: u64 = 10_000;

impl DockerRuntime {
    /// Creates (does not start) an exec of `spec` through the wrapper.
    pub(crate) async fn create_wrapped_exec(
        &self,
        town: &TownId,
        mode: Mode,
        spec: &CommandSpec,
    ) -> Result<String> {
        let wrapped = wrap(mode, spec, &self.image_env_names)?;
        let name = self.container_name(town);
        let config = ExecConfig {
            attach_stdin: Some(false),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            user: Some(crate::container::AGENT_USER.to_owned()),
            tty: Some(false),
            env: Some(wrapped.env),
            cmd: Some(wrapped.cmd),
            ..Default::default()
        };
        match self.docker.create_exec(&name, config).await {
            Ok(r) => Ok(r.id),
            // 404: no such container; 409: it is not running (stopped, paused).
            Err(e) if is_not_found(&e) || status_of(&e) == Some(409) => {
                Err(self.refusal(town).await)
            }
            Err(e) => Err(DockerError::api("creating an exec in", name, e).into()),
        }
    }

    /// `exec` of the trait: an attached exec through the wrapper, its output collected
    /// whole, then its exit code. The wrapper's own failures (missing program or cwd) are
    /// turned into the typed errors every runtime returns.
    pub(crate) async fn exec_command(
        &self,
        town: &TownId,
        spec: &CommandSpec,
    ) -> Result<ExecOutput> {
        let id = self.create_wrapped_exec(town, Mode::Exec, spec).await?;
        let (stdout, stderr) = run_attached(&self.docker, &id)
            .await
            .map_err(|e| not_running_or(e, town))?;
        let exit_code = exit_code(&self.docker, &id).await?;
        let out = ExecOutput {
            exit_code,
            stdout,
            stderr,
        };
        check_wrapper_failure(&out, spec, &self.container_name(town))?;
        Ok(out)
    }
}

/// Maps an exec-start failure: a container that stopped meanwhile is "not running".
fn not_running_or(e: bollard::errors::Error, town: &TownId) -> Error {
    if is_not_found(&e) || status_of(&e) == Some(409) {
        Error::ContainerNotRunning { town: town.clone() }
    } else {
        DockerError::api("running an exec", "", e).into()
    }
}

/// Starts exec `id` attached and collects its stdout and stderr until it ends.
pub(crate) async fn run_attached(
    docker: &Docker,
    id: &str,
) -> std::result::Result<(Vec<u8>, Vec<u8>), bollard::errors::Error> {
    let start = StartExecOptions {
        detach: false,
        tty: false,
        output_capacity: None,
    };
    let StartExecResults::Attached { mut output, .. } = docker.start_exec(id, Some(start)).await?
    else {
        return Ok((Vec::new(), Vec::new()));
    };
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    while let Some(chunk) = output.next().await {
        use bollard::container::LogOutput;
        match chunk? {
            LogOutput::StdOut { message } | LogOutput::Console { message } => {
                stdout.extend_from_slice(&message)
            }
            LogOutput::StdErr { message } => stderr.extend_from_slice(&message),
            LogOutput::StdIn { .. } => {}
        }
    }
    Ok((stdout, stderr))
}

/// The exit code of a finished exec. The engine can report an exec as running for a
/// moment after its output closed, so this polls briefly.
///
/// # Errors
/// [`DockerError::NoExitCode`] when the engine never records the exit.
pub(crate) async fn exit_code(docker: &Docker, id: &str) -> Result<i32> {
    let deadline = tokio::time::Instant::now() + Duration::from_millis(EXIT_RECORD_WAIT_MS);
    let mut pause = Duration::from_millis(5);
    loop {
        let r = docker
            .inspect_exec(id)
            .await
            .map_err(|e| DockerError::api("inspecting exec", id, e))?;
        if r.running != Some(true) {
            if let Some(code) = r.exit_code {
                return Ok(i32::try_from(code).unwrap_or(-1));
            }
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(DockerError::NoExitCode {
                exec: id.to_owned(),
            }
            .into());
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(100));
    }
}

/// The last non-blank line of an output: where the wrapper's markers and the engine's
/// own failure message land.
fn last_line(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .to_owned()
}

/// Turns the wrapper's own failures (missing program, missing cwd, no `/bin/sh` in the
/// image) into typed errors; anything else is the command's own result.
pub(crate) fn check_wrapper_failure(
    out: &ExecOutput,
    spec: &CommandSpec,
    container: &str,
) -> Result<()> {
    let last = last_line(&out.stderr);
    if out.exit_code == 127 && last.starts_with(NOT_FOUND_MARKER) {
        return Err(not_found(spec, container));
    }
    if out.exit_code == 126 && last.starts_with(NO_CWD_MARKER) {
        return Err(no_cwd(spec));
    }
    if out.exit_code == 126 || out.exit_code == 127 {
        for stream in [&out.stdout, &out.stderr] {
            let line = last_line(stream);
            if line.contains("OCI runtime exec failed") {
                return Err(DockerError::NoShell {
                    container: container.to_owned(),
                    line,
                }
                .into());
            }
        }
    }
    Ok(())
}

/// `ProgramNotFound` for `spec`, naming the container so a user knows which image lacks it.
pub(crate) fn not_found(spec: &CommandSpec, container: &str) -> Error {
    Error::ProgramNotFound {
        program: spec.program.clone(),
        hint: format!("; not found in container {container} on the command's PATH"),
    }
}

/// `FileNotFound` for `spec`'s missing working directory (the container's `/` when unset).
pub(crate) fn no_cwd(spec: &CommandSpec) -> Error {
    Error::FileNotFound {
        path: spec
            .cwd
            .as_ref()
            .map(ContainerPath::to_string)
            .unwrap_or_else(|| "/".to_owned()),
    }
}
