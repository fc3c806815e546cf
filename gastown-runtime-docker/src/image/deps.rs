//! What a host binary needs to run inside a `FROM scratch` image: its shared libraries and
//! dynamic loader, as the host's `ldd` lists them.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::StepError;

/// How a binary is linked, from `ldd`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Linkage {
    /// No dynamic loader: runs on its own.
    Static,
    /// The shared libraries and the loader, absolute host paths, in `ldd`'s order.
    Dynamic(Vec<PathBuf>),
}

/// Runs the host's `ldd` on `binary` (glibc's `ldd`; Debian package `libc-bin`).
///
/// `ldd` runs with an environment of its own (`PATH=/usr/bin:/bin`, `LC_ALL=C`) so its
/// messages are parseable whatever the caller's locale.
///
/// # Errors
/// A [`StepError`] when `ldd` cannot run, or a library is `not found` on the host.
pub(crate) fn linkage(binary: &Path) -> Result<Linkage, StepError> {
    let out = Command::new("ldd")
        .arg(binary)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("LC_ALL", "C")
        .output()
        .map_err(|e| StepError::io(format!("running ldd on {}", binary.display()), e))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    parse_ldd(&text).map_err(|e| StepError::new(format!("ldd {}: {e}", binary.display())))
}

/// Parses `ldd` output. Lines look like
/// `libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x…)`, `/lib64/ld-linux-x86-64.so.2 (0x…)`,
/// `linux-vdso.so.1 (0x…)` (kernel-provided, skipped), `libfoo.so => not found`, or, for a
/// static binary, `not a dynamic executable` / `statically linked`.
fn parse_ldd(text: &str) -> Result<Linkage, String> {
    if text.contains("not a dynamic executable") || text.contains("statically linked") {
        return Ok(Linkage::Static);
    }
    let mut libs: Vec<PathBuf> = Vec::new();
    let mut missing = Vec::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let path = match line.split_once("=>") {
            Some((name, rest)) => {
                let rest = rest.trim();
                if rest.starts_with("not found") {
                    missing.push(name.trim().to_owned());
                    continue;
                }
                rest.split_whitespace().next().unwrap_or("")
            }
            None => line.split_whitespace().next().unwrap_or(""),
        };
        if path.starts_with('/') {
            let path = PathBuf::from(path);
            if !libs.contains(&path) {
                libs.push(path);
            }
        }
    }
    if !missing.is_empty() {
        return Err(format!(
            "libraries not found on the host: {}",
            missing.join(", ")
        ));
    }
    if libs.is_empty() {
        return Err(format!("unexpected output: {}", text.trim()));
    }
    Ok(Linkage::Dynamic(libs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_dynamic_binary() {
        let out = "\tlinux-vdso.so.1 (0x00007ffd)\n\
                   \tlibz.so.1 => /lib/x86_64-linux-gnu/libz.so.1 (0x00007f)\n\
                   \tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f)\n\
                   \t/lib64/ld-linux-x86-64.so.2 (0x00007f)\n";
        assert_eq!(
            parse_ldd(out).unwrap(),
            Linkage::Dynamic(vec![
                "/lib/x86_64-linux-gnu/libz.so.1".into(),
                "/lib/x86_64-linux-gnu/libc.so.6".into(),
                "/lib64/ld-linux-x86-64.so.2".into(),
            ])
        );
    }

    #[test]
    fn recognises_static_binaries() {
        assert_eq!(
            parse_ldd("\tnot a dynamic executable\n").unwrap(),
            Linkage::Static
        );
        assert_eq!(parse_ldd("\tstatically linked\n").unwrap(), Linkage::Static);
    }

    #[test]
    fn missing_libraries_are_an_error_naming_them() {
        let err = parse_ldd("\tlibfoo.so.1 => not found\n\tlibc.so.6 => /lib/libc.so.6 (0x1)\n")
            .unwrap_err();
        assert!(err.contains("libfoo.so.1"), "{err}");
    }

    #[test]
    fn the_host_busybox_is_static_when_installed() {
        // Real part: the Debian `busybox-static` package the image is built from.
        let busybox = Path::new("/bin/busybox");
        if !busybox.exists() {
            eprintln!("skipping: /bin/busybox not installed");
            return;
        }
        assert_eq!(linkage(busybox).unwrap(), Linkage::Static);
    }
}
