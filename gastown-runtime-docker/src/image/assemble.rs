//! Assembling the agent image's build context from host files: nothing can be pulled from a
//! registry, so the image is `FROM scratch` plus what the host has.
//!
//! ```text
//! /bin/busybox + applet symlinks      Debian `busybox-static` (must be static)
//! /usr/local/bin/kilo                 the kilo binary
//! <git's host path>, its exec-path    git (builtins as symlinks) and its templates
//! <every library ldd lists>           kilo's and git's shared libraries and the loader
//! /etc/{passwd,group,gitconfig}       uid/gid 1000 `gastown`; git trusts every repository
//! /tmp (1777); /agents /workspace /rigs owned by 1000
//! ```

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::build_context::{BuildContext, Source};
use super::deps::{linkage, Linkage};
use super::StepError;

/// The uid and gid every container process runs as (the image's `USER`).
pub const AGENT_UID: u32 = 1000;

/// Where the static busybox comes from: Debian's `busybox-static` package installs it here.
pub const BUSYBOX_HOST_PATH: &str = "/bin/busybox";

/// Where kilo lands in the image (on the agents' `PATH`, `gastown_core::env::AGENT_PATH`).
pub const KILO_IMAGE_PATH: &str = "/usr/local/bin/kilo";

/// The git used when present (Debian's package); otherwise the first `git` on `PATH`.
const PREFERRED_GIT: &str = "/usr/bin/git";

/// The Dockerfile: everything is in the context, so the build is two `COPY`s (the second
/// one chowns the agents' writable directories) and the unprivileged user.
pub(crate) const DOCKERFILE: &str = "FROM scratch\n\
COPY rootfs/ /\n\
COPY --chown=1000:1000 owned/ /\n\
USER 1000:1000\n\
LABEL gastown.image=agent\n";

/// A failed assembly: what failed (and the I/O error behind it), and the steps taken up
/// to it (for the error's log tail).
#[derive(Debug)]
pub(crate) struct AssemblyError {
    pub(crate) step: StepError,
    pub(crate) log: Vec<String>,
}

/// Builds the build context. Reads the host (file metadata, `ldd`, `busybox --list`,
/// `git --exec-path`); writes nothing.
pub(crate) fn assemble(kilo_bin: &Path) -> Result<BuildContext, AssemblyError> {
    let mut log = Vec::new();
    let mut build = BuildContext::default();
    match assemble_into(&mut build, kilo_bin, &mut log) {
        Ok(()) => Ok(build),
        Err(step) => {
            log.push(format!("error: {}", step.message));
            Err(AssemblyError { step, log })
        }
    }
}

fn assemble_into(
    build: &mut BuildContext,
    kilo_bin: &Path,
    log: &mut Vec<String>,
) -> Result<(), StepError> {
    log.push(format!("kilo: {}", kilo_bin.display()));
    let kilo = std::fs::canonicalize(kilo_bin)
        .map_err(|e| StepError::io(format!("kilo binary {}", kilo_bin.display()), e))?;
    if !kilo.is_file() {
        return Err(StepError::new(format!(
            "kilo binary {} is not a file",
            kilo_bin.display()
        )));
    }

    add_busybox(build, log)?;
    build.file(&rootfs(KILO_IMAGE_PATH), 0o755, Source::Host(kilo.clone()));
    add_libraries(build, &kilo, log)?;
    add_git(build, log)?;
    add_etc(build);

    build.dir("rootfs/tmp", 0o1777);
    for dir in ["agents", "workspace", "rigs"] {
        build.dir(&format!("owned/{dir}"), 0o755);
    }
    build.file(
        "Dockerfile",
        0o644,
        Source::Bytes(DOCKERFILE.as_bytes().to_vec()),
    );
    log.push("build context assembled".to_owned());
    Ok(())
}

/// The build context path of an absolute image path: everything under `rootfs/` is copied
/// to `/` by the Dockerfile's first `COPY`.
fn rootfs(abs: &str) -> String {
    format!("rootfs/{}", abs.trim_start_matches('/'))
}

fn host_path_str(p: &Path) -> Result<&str, StepError> {
    p.to_str()
        .ok_or_else(|| StepError::new(format!("{} is not valid UTF-8", p.display())))
}

/// The static busybox and one symlink per applet: `sh`, `kill`, `cat` and `mkdir` are what
/// the runtime itself needs (the exec wrapper, signals, `put_file`'s parents), so a busybox
/// without them fails the build here rather than every command later.
fn add_busybox(build: &mut BuildContext, log: &mut Vec<String>) -> Result<(), StepError> {
    let busybox = Path::new(BUSYBOX_HOST_PATH);
    log.push(format!("busybox: {BUSYBOX_HOST_PATH}"));
    if !busybox.is_file() {
        return Err(StepError::new(format!(
            "{BUSYBOX_HOST_PATH} is missing: install Debian's busybox-static (scripts/ensure-docker.sh does)"
        )));
    }
    if linkage(busybox)? != Linkage::Static {
        return Err(StepError::new(format!(
            "{BUSYBOX_HOST_PATH} is dynamically linked: install Debian's busybox-static instead of busybox"
        )));
    }
    build.file(
        "rootfs/bin/busybox",
        0o755,
        Source::Host(busybox.to_path_buf()),
    );
    let out = Command::new(busybox)
        .arg("--list")
        .env_clear()
        .output()
        .map_err(|e| StepError::io("busybox --list", e))?;
    let list = String::from_utf8_lossy(&out.stdout);
    let applets: Vec<&str> = list
        .lines()
        .map(str::trim)
        .filter(|a| !a.is_empty() && !a.contains('/') && *a != "busybox")
        .collect();
    for needed in ["sh", "kill", "cat", "mkdir"] {
        if !applets.contains(&needed) {
            return Err(StepError::new(format!(
                "{BUSYBOX_HOST_PATH} lacks the {needed} applet"
            )));
        }
    }
    for applet in &applets {
        build.symlink(&format!("rootfs/bin/{applet}"), "busybox");
    }
    // For `#!/usr/bin/env …` scripts.
    build.symlink("rootfs/usr/bin/env", "/bin/busybox");
    log.push(format!("busybox applets: {}", applets.len()));
    Ok(())
}

/// The shared libraries (and loader) `binary` needs, at their host paths, since the
/// loader looks for them where `ldd` found them.
fn add_libraries(
    build: &mut BuildContext,
    binary: &Path,
    log: &mut Vec<String>,
) -> Result<(), StepError> {
    match linkage(binary)? {
        Linkage::Static => log.push(format!("{}: static", binary.display())),
        Linkage::Dynamic(libs) => {
            for lib in libs {
                let target = rootfs(host_path_str(&lib)?);
                if !build.contains(&target) {
                    log.push(format!("library: {}", lib.display()));
                    build.file(&target, 0o755, Source::Host(lib));
                }
            }
        }
    }
    Ok(())
}

/// The host's git: Debian's when present, so the image does not depend on the caller's
/// `PATH` order.
fn find_git() -> Result<PathBuf, StepError> {
    if Path::new(PREFERRED_GIT).is_file() {
        return Ok(PathBuf::from(PREFERRED_GIT));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join("git"))
        .find(|p| p.is_file())
        .ok_or_else(|| StepError::new("git is not installed on the host (Debian package git)"))
}

/// git at its host path, its exec-path (builtins such as `git-upload-pack`, needed for
/// local clones, as symlinks to git) and templates, mirrored at their host paths because
/// git has them compiled in.
fn add_git(build: &mut BuildContext, log: &mut Vec<String>) -> Result<(), StepError> {
    let git = find_git()?;
    let git_str = host_path_str(&git)?.to_owned();
    log.push(format!("git: {git_str}"));
    let real_git = std::fs::canonicalize(&git).map_err(|e| StepError::io(git_str.clone(), e))?;
    build.file(&rootfs(&git_str), 0o755, Source::Host(real_git.clone()));
    add_libraries(build, &real_git, log)?;

    let out = Command::new(&git)
        .arg("--exec-path")
        .env_clear()
        .output()
        .map_err(|e| StepError::io(format!("{git_str} --exec-path"), e))?;
    let exec_path = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    let exec_str = host_path_str(&exec_path)?.to_owned();
    if !exec_path.is_absolute() || !exec_path.is_dir() {
        return Err(StepError::new(format!(
            "{git_str} --exec-path gave {exec_str:?}"
        )));
    }
    let is_git = |p: &Path| -> bool {
        let (Ok(a), Ok(b)) = (std::fs::metadata(p), std::fs::metadata(&real_git)) else {
            return false;
        };
        let same_inode = a.dev() == b.dev() && a.ino() == b.ino();
        let same_target = std::fs::canonicalize(p)
            .is_ok_and(|t| t == real_git || t.file_name().is_some_and(|n| n == "git"));
        same_inode || same_target
    };
    let entries = std::fs::read_dir(&exec_path).map_err(|e| StepError::io(exec_str.clone(), e))?;
    let mut builtins = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if (name == "git" || name.starts_with("git-")) && is_git(&entry.path()) {
            build.symlink(&rootfs(&format!("{exec_str}/{name}")), &git_str);
            builtins += 1;
        }
    }
    for needed in ["git-upload-pack", "git-receive-pack"] {
        let p = rootfs(&format!("{exec_str}/{needed}"));
        if !build.contains(&p) {
            build.symlink(&p, &git_str);
        }
    }
    log.push(format!("git exec-path {exec_str}: {builtins} builtins"));

    // <prefix>/{lib,libexec}/git-core → <prefix>/share/git-core/templates
    if let Some(prefix) = exec_path.parent().and_then(Path::parent) {
        let templates = prefix.join("share/git-core/templates");
        if templates.is_dir() {
            add_tree(build, &templates)?;
        }
    }
    Ok(())
}

/// Copies a small host directory tree (regular files and directories) at its host path.
fn add_tree(build: &mut BuildContext, dir: &Path) -> Result<(), StepError> {
    let dir_str = host_path_str(dir)?;
    build.dir(&rootfs(dir_str), 0o755);
    let entries = std::fs::read_dir(dir).map_err(|e| StepError::io(dir_str, e))?;
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(meta) = std::fs::metadata(&path) else {
            continue;
        };
        if meta.is_dir() {
            add_tree(build, &path)?;
        } else if meta.is_file() {
            let mode = meta.mode() & 0o777;
            build.file(
                &rootfs(host_path_str(&path)?),
                mode,
                Source::Host(path.clone()),
            );
        }
    }
    Ok(())
}

/// `/etc/passwd` and `/etc/group` (the agents' uid 1000 needs a name for `su` and git)
/// and a system gitconfig.
fn add_etc(build: &mut BuildContext) {
    let passwd = format!(
        "root:x:0:0:root:/root:/bin/sh\n\
         gastown:x:{AGENT_UID}:{AGENT_UID}:gastown:/workspace:/bin/sh\n\
         nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
    );
    let group = format!("root:x:0:\ngastown:x:{AGENT_UID}:\nnogroup:x:65534:\n");
    build.file(
        "rootfs/etc/passwd",
        0o644,
        Source::Bytes(passwd.into_bytes()),
    );
    build.file("rootfs/etc/group", 0o644, Source::Bytes(group.into_bytes()));
    // Rigs are cloned from read-only host mounts owned by another uid; without this git
    // refuses them ("dubious ownership"). The container holds one town's own repositories.
    build.file(
        "rootfs/etc/gitconfig",
        0o644,
        Source::Bytes(b"[safe]\n\tdirectory = *\n".to_vec()),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_kilo_binary_fails_with_a_log() {
        let err = assemble(Path::new("/definitely/not/here/kilo")).unwrap_err();
        assert!(
            err.step.message.contains("/definitely/not/here/kilo"),
            "{}",
            err.step.message
        );
        assert!(err.step.source.is_some(), "the I/O error is kept");
        assert!(err.log.iter().any(|l| l.starts_with("kilo:")));
        assert!(err.log.last().unwrap().starts_with("error:"));
    }
}
