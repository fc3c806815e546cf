//! The agent image: make sure it exists in the engine.
//!
//! No registry is assumed, so the image is built here, `FROM scratch`, from host files:
//!
//! - [`assemble`](self::assemble): which host files go in (static busybox, kilo and its
//!   glibc libraries, git, `/etc`), collected into a build context;
//! - [`build_context`](self::build_context): [`BuildContext`](build_context::BuildContext),
//!   the build context as a list of entries, hashed and written as a tar without a
//!   staging copy;
//! - [`deps`](self::deps): a binary's shared libraries, from the host's `ldd`;
//! - this file: hash the build context, reuse the image whose tag carries that hash, or
//!   build it through the engine (classic builder).

pub(crate) mod assemble;
pub(crate) mod build_context;
pub(crate) mod deps;

use std::collections::VecDeque;
use std::path::{Path, PathBuf};

use bollard::query_parameters::BuildImageOptionsBuilder;
use bollard::Docker;
use futures::StreamExt;
use gastown_core::Result;

use crate::error::{is_not_found, BoxError, Error as DockerError};
use assemble::assemble;

/// The repository part of built image tags: `gastown-agent:<16 hex of the build context
/// hash>`.
pub const IMAGE_REPOSITORY: &str = "gastown-agent";

/// The label gastown's built images carry (`gastown.image=agent`, set in the Dockerfile).
pub(crate) const IMAGE_LABEL: &str = "gastown.image";
/// Its value.
pub(crate) const IMAGE_LABEL_VALUE: &str = "agent";

/// How many lines of the build log an [`DockerError::ImageBuild`] carries.
const LOG_TAIL_LINES: usize = 40;

/// A failed step of assembling the build context: what failed, and the I/O error behind
/// it when there is one (kept as the image build error's source, not formatted away).
#[derive(Debug)]
pub(crate) struct StepError {
    pub(crate) message: String,
    pub(crate) source: Option<std::io::Error>,
}

impl StepError {
    /// A step that failed on a condition (a missing applet, a dynamic busybox).
    pub(crate) fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            source: None,
        }
    }

    /// A step whose I/O failed.
    pub(crate) fn io(message: impl Into<String>, source: std::io::Error) -> Self {
        Self {
            message: message.into(),
            source: Some(source),
        }
    }
}

/// The tag for a build context hash: the first 16 hex digits (64 bits) name it.
pub(crate) fn tag_for(hash: &str) -> String {
    format!("{IMAGE_REPOSITORY}:{}", &hash[..16.min(hash.len())])
}

/// What [`ensure_built`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BuiltImage {
    /// The tag.
    pub(crate) tag: String,
    /// False when an image with this tag already existed.
    pub(crate) built: bool,
}

/// An [`DockerError::ImageBuild`] carrying the tail of `log` and the cause.
fn build_error(
    message: impl Into<String>,
    log: &[String],
    source: Option<BoxError>,
) -> DockerError {
    let start = log.len().saturating_sub(LOG_TAIL_LINES);
    DockerError::ImageBuild {
        message: message.into(),
        log_tail: log[start..].join("\n"),
        source,
    }
}

/// Builds the agent image for `kilo_bin` unless an image with the same input hash exists.
///
/// # Errors
/// [`DockerError::ImageBuild`] with the tail of the assembly or build log when an input
/// is missing (kilo, busybox-static, git) or the engine's build fails.
pub(crate) async fn ensure_built(docker: &Docker, kilo_bin: &Path) -> Result<BuiltImage> {
    let kilo: PathBuf = kilo_bin.to_path_buf();
    // Reading and hashing ~180 MB is blocking work.
    let (build, hash, mut log) = tokio::task::spawn_blocking(move || {
        let build = assemble(&kilo)
            .map_err(|e| build_error(e.step.message, &e.log, e.step.source.map(BoxError::from)))?;
        let hash = build
            .sha256()
            .map_err(|e| build_error("hashing the build context", &[], Some(e.into())))?;
        Ok::<_, DockerError>((build, hash, Vec::<String>::new()))
    })
    .await
    .map_err(|e| build_error("the assembly task failed", &[], Some(e.into())))??;

    let tag = tag_for(&hash);
    match docker.inspect_image(&tag).await {
        Ok(_) => {
            tracing::debug!(%tag, "agent image present, reused");
            return Ok(BuiltImage { tag, built: false });
        }
        Err(e) if is_not_found(&e) => {}
        Err(e) => return Err(build_error(format!("inspecting {tag}"), &[], Some(e.into())).into()),
    }

    tracing::info!(%tag, "building the agent image");
    let tar = tokio::task::spawn_blocking(move || build.write_tar(Vec::new()))
        .await
        .map_err(|e| build_error("the tar task failed", &[], Some(e.into())))?
        .map_err(|e| build_error("writing the build context", &[], Some(e.into())))?;
    log.push(format!("build context: {} bytes, hash {hash}", tar.len()));

    let options = BuildImageOptionsBuilder::default()
        .t(&tag)
        .rm(true)
        .forcerm(true)
        .build();
    let mut stream = docker.build_image(options, None, Some(bollard::body_full(tar.into())));
    let mut lines: VecDeque<String> = log.into();
    let mut failure = None;
    while let Some(item) = stream.next().await {
        match item {
            Ok(info) => {
                for text in [info.stream, info.status].into_iter().flatten() {
                    for line in text.lines().filter(|l| !l.trim().is_empty()) {
                        lines.push_back(line.to_owned());
                        if lines.len() > LOG_TAIL_LINES * 4 {
                            lines.pop_front();
                        }
                    }
                }
            }
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
    }
    let lines: Vec<String> = lines.into();
    if let Some(e) = failure {
        return Err(build_error("the engine's build failed", &lines, Some(e.into())).into());
    }
    match docker.inspect_image(&tag).await {
        Ok(_) => {
            tracing::info!(%tag, "agent image built");
            Ok(BuiltImage { tag, built: true })
        }
        Err(e) => Err(build_error(
            format!("the build ended but {tag} is not there"),
            &lines,
            Some(e.into()),
        )
        .into()),
    }
}
