//! Making sure the agent image exists: hash the assembled context, reuse the image whose
//! tag carries that hash, or build it through the engine (classic builder, no registry).

use std::collections::VecDeque;
use std::path::{Path, PathBuf};

use bollard::query_parameters::BuildImageOptionsBuilder;
use bollard::Docker;
use futures::StreamExt;
use gastown_core::{Error, Result};

use crate::assemble::assemble;
use crate::errors::is_not_found;

/// The repository part of built image tags: `gastown-agent:<16 hex of the context hash>`.
pub const IMAGE_REPOSITORY: &str = "gastown-agent";

/// The label gastown's built images carry (`gastown.image=agent`, set in the Dockerfile).
pub(crate) const IMAGE_LABEL: &str = "gastown.image";
/// Its value.
pub(crate) const IMAGE_LABEL_VALUE: &str = "agent";

/// How many lines of the build log an [`Error::ImageBuild`] carries.
const LOG_TAIL_LINES: usize = 40;

/// The tag for a context hash: the first 16 hex digits (64 bits) name it.
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

fn build_error(message: impl Into<String>, log: &[String]) -> Error {
    let start = log.len().saturating_sub(LOG_TAIL_LINES);
    Error::ImageBuild {
        message: message.into(),
        log_tail: log[start..].join("\n"),
    }
}

/// Builds the agent image for `kilo_bin` unless an image with the same input hash exists.
///
/// # Errors
/// [`Error::ImageBuild`] with the tail of the assembly or build log when an input is
/// missing (kilo, busybox-static, git) or the engine's build fails.
pub(crate) async fn ensure_built(docker: &Docker, kilo_bin: &Path) -> Result<BuiltImage> {
    let kilo: PathBuf = kilo_bin.to_path_buf();
    // Reading and hashing ~180 MB is blocking work.
    let (ctx, hash, mut log) = tokio::task::spawn_blocking(move || {
        let ctx = assemble(&kilo).map_err(|e| build_error(e.message, &e.log))?;
        let hash = ctx
            .sha256()
            .map_err(|e| build_error(format!("hashing the build context: {e}"), &[]))?;
        Ok::<_, Error>((ctx, hash, Vec::<String>::new()))
    })
    .await
    .map_err(|e| build_error(format!("assembly task failed: {e}"), &[]))??;

    let tag = tag_for(&hash);
    match docker.inspect_image(&tag).await {
        Ok(_) => {
            tracing::debug!(%tag, "agent image present, reused");
            return Ok(BuiltImage { tag, built: false });
        }
        Err(e) if is_not_found(&e) => {}
        Err(e) => return Err(build_error(format!("inspecting {tag}: {e}"), &[])),
    }

    tracing::info!(%tag, "building the agent image");
    let tar = tokio::task::spawn_blocking(move || ctx.write_tar(Vec::new()))
        .await
        .map_err(|e| build_error(format!("tar task failed: {e}"), &[]))?
        .map_err(|e| build_error(format!("writing the build context: {e}"), &[]))?;
    log.push(format!("context: {} bytes, hash {hash}", tar.len()));

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
                failure = Some(e.to_string());
                break;
            }
        }
    }
    let lines: Vec<String> = lines.into();
    if let Some(message) = failure {
        return Err(build_error(message, &lines));
    }
    match docker.inspect_image(&tag).await {
        Ok(_) => {
            tracing::info!(%tag, "agent image built");
            Ok(BuiltImage { tag, built: true })
        }
        Err(e) => Err(build_error(
            format!("the build ended but {tag} is not there: {e}"),
            &lines,
        )),
    }
}
