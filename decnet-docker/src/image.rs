//! The decky image: `FROM scratch` plus the `decnet-decky` binary, built by `decnet` and
//! `decnet-agent` themselves from the binary found next to their own executable.
//!
//! When the binary is dynamically linked (a plain `cargo build` links glibc), the build context
//! also carries its ELF interpreter (`PT_INTERP`) and every shared library it needs, transitively
//! (`DT_NEEDED`, resolved like the loader does: `DT_RPATH`/`DT_RUNPATH`, then the standard
//! directories), each stored with its real content at the path the loader will look for.
//!
//! The build context is a deterministic tar (sorted entries, mtime 0, uid/gid 0, fixed modes), so
//! the image tag is a content hash: `decnet-decky:<first 16 hex of sha256 of the tar>`. A new
//! binary gives a new tag; an existing tag is never rebuilt. Images are built through the Engine
//! API with the classic builder (no BuildKit) and nothing is ever pulled.

use std::collections::{BTreeMap, BTreeSet, HashSet, VecDeque};
use std::fmt::Write as _;
use std::io::Read as _;
use std::path::{Component, Path, PathBuf};

use bollard::errors::Error as BollardError;
use bollard::query_parameters::BuildImageOptionsBuilder;
use bollard::Docker;
use futures_util::StreamExt as _;
use sha2::{Digest as _, Sha256};

/// File name of the decky binary, next to `decnet` / `decnet-agent` after `cargo build --release`.
pub const DECKY_BINARY_NAME: &str = "decnet-decky";
/// Repository part of the decky image tag.
pub const IMAGE_REPOSITORY: &str = "decnet-decky";
/// Where the binary lives inside the image (its entrypoint).
pub const BINARY_PATH_IN_IMAGE: &str = "/decnet-decky";
/// Label key set on the image (and on every object DECNET manages).
pub const MANAGED_LABEL_KEY: &str = "decnet.managed";
/// Value of [`MANAGED_LABEL_KEY`].
pub const MANAGED_LABEL_VALUE: &str = "true";

/// The Dockerfile of the decky image. `.dockerignore` keeps it (and itself) out of `COPY . /`.
pub const DOCKERFILE: &str = "FROM scratch\n\
LABEL decnet.managed=true\n\
COPY . /\n\
ENTRYPOINT [\"/decnet-decky\"]\n\
CMD [\"base\"]\n";
const DOCKERIGNORE: &str = "Dockerfile\n.dockerignore\n";

/// Failures finding the decky binary, packaging it, or building its image.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// No decky binary at any of the places looked at.
    #[error(
        "decky binary `{DECKY_BINARY_NAME}` not found (tried {}); run `cargo build --release` \
         (it puts {DECKY_BINARY_NAME} next to decnet and decnet-agent) or give its path with \
         --decky-bin or DECNET_DECKY_BIN",
        join_paths(tried)
    )]
    BinaryNotFound {
        /// Every path tried, in order.
        tried: Vec<PathBuf>,
    },
    /// A file could not be read (or the current executable could not be located).
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The binary or one of its libraries is not an ELF file this module can package.
    #[error("{}: not a packageable ELF file: {reason}", path.display())]
    Elf {
        /// The offending file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A `DT_NEEDED` library was found in none of the search directories.
    #[error(
        "shared library {name} needed by {} not found (searched {})",
        needed_by.display(),
        join_paths(searched)
    )]
    LibraryNotFound {
        /// The `DT_NEEDED` name.
        name: String,
        /// The object that needs it.
        needed_by: PathBuf,
        /// The directories searched, in order.
        searched: Vec<PathBuf>,
    },
    /// The Docker daemon could not be reached or answered nothing usable.
    #[error("cannot reach the docker daemon at {socket}: {reason}")]
    Connect {
        /// The socket (or `DOCKER_HOST`) tried.
        socket: String,
        /// Why, in words an operator can act on.
        reason: String,
    },
    /// An Engine API call failed.
    #[error("docker {action} failed: {source}")]
    Docker {
        /// What was being done (e.g. `inspect image decnet-decky:0123…`).
        action: String,
        /// The bollard error.
        #[source]
        source: BollardError,
    },
    /// The daemon reported an error while building the image.
    #[error("building image {tag} failed: {message}")]
    Build {
        /// The tag being built.
        tag: String,
        /// The daemon's message.
        message: String,
    },
}

fn join_paths(paths: &[PathBuf]) -> String {
    if paths.is_empty() {
        return "nothing".to_string();
    }
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> ImageError + '_ {
    move |source| ImageError::Io {
        path: path.to_path_buf(),
        source,
    }
}

// ---------------------------------------------------------------------------------------------
// Finding the binary
// ---------------------------------------------------------------------------------------------

/// Locate the decky binary: `explicit` (from a flag or `DECNET_DECKY_BIN`, read by the caller) if
/// given; else `decnet-decky` next to the current executable; else, when the current executable
/// is in `target/<profile>/deps/` (an integration test), `target/<profile>/decnet-decky`.
pub fn find_decky_binary(explicit: Option<&Path>) -> Result<PathBuf, ImageError> {
    find_sibling_binary(DECKY_BINARY_NAME, explicit)
        .map_err(|tried| ImageError::BinaryNotFound { tried })
}

/// Locate one of the workspace's binaries (`name`) the way [`find_decky_binary`] does; the
/// error lists the paths tried.
pub fn find_sibling_binary(name: &str, explicit: Option<&Path>) -> Result<PathBuf, Vec<PathBuf>> {
    match explicit {
        Some(path) => find_binary_from(name, Some(path), Path::new("")),
        None => {
            let exe = std::env::current_exe().map_err(|_| Vec::new())?;
            find_binary_from(name, None, &exe)
        }
    }
}

#[cfg(test)]
fn find_decky_binary_from(explicit: Option<&Path>, exe: &Path) -> Result<PathBuf, ImageError> {
    find_binary_from(DECKY_BINARY_NAME, explicit, exe)
        .map_err(|tried| ImageError::BinaryNotFound { tried })
}

fn find_binary_from(
    name: &str,
    explicit: Option<&Path>,
    exe: &Path,
) -> Result<PathBuf, Vec<PathBuf>> {
    let mut tried = Vec::new();
    match explicit {
        Some(path) => tried.push(path.to_path_buf()),
        None => {
            if let Some(dir) = exe.parent() {
                tried.push(dir.join(name));
                if dir.file_name().is_some_and(|n| n == "deps") {
                    if let Some(profile_dir) = dir.parent() {
                        tried.push(profile_dir.join(name));
                    }
                }
            }
        }
    }
    match tried.iter().find(|p| p.is_file()) {
        Some(found) => Ok(found.clone()),
        None => Err(tried),
    }
}

// ---------------------------------------------------------------------------------------------
// Minimal ELF64 little-endian reader
// ---------------------------------------------------------------------------------------------

const EM_X86_64: u16 = 62;
const EM_AARCH64: u16 = 183;

const PT_LOAD: u32 = 1;
const PT_DYNAMIC: u32 = 2;
const PT_INTERP: u32 = 3;

const DT_NULL: u64 = 0;
const DT_NEEDED: u64 = 1;
const DT_STRTAB: u64 = 5;
const DT_STRSZ: u64 = 10;
const DT_SONAME: u64 = 14;
const DT_RPATH: u64 = 15;
const DT_RUNPATH: u64 = 29;

/// What the loader needs from an ELF file: its interpreter and dynamic dependencies.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ElfDeps {
    /// `e_machine` (62 = x86-64, 183 = aarch64).
    pub machine: u16,
    /// `PT_INTERP`, e.g. `/lib64/ld-linux-x86-64.so.2`; `None` for a static binary.
    pub interpreter: Option<String>,
    /// `DT_NEEDED` entries, in order.
    pub needed: Vec<String>,
    /// `DT_SONAME`, for shared objects.
    pub soname: Option<String>,
    /// `DT_RPATH` entries (split on `:`).
    pub rpath: Vec<String>,
    /// `DT_RUNPATH` entries (split on `:`).
    pub runpath: Vec<String>,
}

fn bytes_at<const N: usize>(data: &[u8], off: u64) -> Result<[u8; N], String> {
    usize::try_from(off)
        .ok()
        .and_then(|o| data.get(o..o.checked_add(N)?))
        .and_then(|s| <[u8; N]>::try_from(s).ok())
        .ok_or_else(|| format!("truncated: {N} bytes at offset {off} past the end of the file"))
}

fn u16_at(data: &[u8], off: u64) -> Result<u16, String> {
    bytes_at::<2>(data, off).map(u16::from_le_bytes)
}

fn u32_at(data: &[u8], off: u64) -> Result<u32, String> {
    bytes_at::<4>(data, off).map(u32::from_le_bytes)
}

fn u64_at(data: &[u8], off: u64) -> Result<u64, String> {
    bytes_at::<8>(data, off).map(u64::from_le_bytes)
}

/// A NUL-terminated string starting at `off`, not reading past `limit`.
fn cstr_at(data: &[u8], off: u64, limit: u64) -> Result<String, String> {
    let start = usize::try_from(off).map_err(|_| format!("string offset {off} out of range"))?;
    let end = usize::try_from(limit).unwrap_or(usize::MAX).min(data.len());
    let bytes = data
        .get(start..end)
        .ok_or_else(|| format!("string at offset {off} past the end of the file"))?;
    let len = bytes
        .iter()
        .position(|&b| b == 0)
        .ok_or_else(|| format!("unterminated string at offset {off}"))?;
    String::from_utf8(bytes[..len].to_vec())
        .map_err(|_| format!("string at offset {off} is not UTF-8"))
}

/// Check the ELF identification: 64-bit little-endian, returning `e_machine`.
fn elf_ident(data: &[u8]) -> Result<u16, String> {
    if data.len() < 64 || data[..4] != *b"\x7fELF" {
        return Err("no ELF header".to_string());
    }
    if data[4] != 2 {
        return Err(format!("ELF class {} is not 64-bit", data[4]));
    }
    if data[5] != 1 {
        return Err("big-endian ELF is not supported".to_string());
    }
    u16_at(data, 18)
}

/// Read the interpreter and dynamic dependencies of an ELF64 little-endian executable or shared
/// object from its program headers (`PT_INTERP`, `PT_DYNAMIC`) — no section headers needed, so
/// stripped files work.
pub fn elf_dependencies(data: &[u8]) -> Result<ElfDeps, String> {
    let machine = elf_ident(data)?;
    let e_type = u16_at(data, 16)?;
    if e_type != 2 && e_type != 3 {
        return Err(format!(
            "ELF type {e_type} is neither an executable nor a shared object"
        ));
    }
    let phoff = u64_at(data, 32)?;
    let phentsize = u64::from(u16_at(data, 54)?);
    let phnum = u64::from(u16_at(data, 56)?);
    if phnum == 0xffff {
        return Err("extended program header numbering is not supported".to_string());
    }
    if phnum > 0 && phentsize < 56 {
        return Err(format!("program header size {phentsize} is too small"));
    }

    let mut deps = ElfDeps {
        machine,
        ..ElfDeps::default()
    };
    let mut loads = Vec::new(); // (vaddr, offset, filesz)
    let mut dynamic = None; // (offset, filesz)
    for i in 0..phnum {
        let ph = phoff
            .checked_add(i * phentsize)
            .ok_or("program header offset overflows")?;
        let p_type = u32_at(data, ph)?;
        let p_offset = u64_at(data, ph + 8)?;
        let p_vaddr = u64_at(data, ph + 16)?;
        let p_filesz = u64_at(data, ph + 32)?;
        match p_type {
            PT_LOAD => loads.push((p_vaddr, p_offset, p_filesz)),
            PT_DYNAMIC => dynamic = Some((p_offset, p_filesz)),
            PT_INTERP => {
                let limit = p_offset.saturating_add(p_filesz);
                let interp = cstr_at(data, p_offset, limit)?;
                if interp.is_empty() {
                    return Err("empty PT_INTERP".to_string());
                }
                deps.interpreter = Some(interp);
            }
            _ => {}
        }
    }

    let Some((dyn_off, dyn_size)) = dynamic else {
        return Ok(deps);
    };
    let mut needed_offs = Vec::new();
    let mut rpath_offs = Vec::new();
    let mut runpath_offs = Vec::new();
    let mut soname_off = None;
    let mut strtab = None;
    let mut strsz = None;
    for i in 0..dyn_size / 16 {
        let entry = dyn_off + i * 16;
        let tag = u64_at(data, entry)?;
        let val = u64_at(data, entry + 8)?;
        match tag {
            DT_NULL => break,
            DT_NEEDED => needed_offs.push(val),
            DT_STRTAB => strtab = Some(val),
            DT_STRSZ => strsz = Some(val),
            DT_SONAME => soname_off = Some(val),
            DT_RPATH => rpath_offs.push(val),
            DT_RUNPATH => runpath_offs.push(val),
            _ => {}
        }
    }
    if needed_offs.is_empty()
        && rpath_offs.is_empty()
        && runpath_offs.is_empty()
        && soname_off.is_none()
    {
        return Ok(deps);
    }
    let strtab_vaddr = strtab.ok_or("PT_DYNAMIC without DT_STRTAB")?;
    // DT_STRTAB is a virtual address: map it to a file offset through the PT_LOAD segments.
    let strtab_off = loads
        .iter()
        .find(|(vaddr, _, filesz)| strtab_vaddr >= *vaddr && strtab_vaddr - *vaddr < *filesz)
        .map(|(vaddr, offset, _)| strtab_vaddr - vaddr + offset)
        .ok_or_else(|| format!("DT_STRTAB {strtab_vaddr:#x} is in no PT_LOAD segment"))?;
    let strtab_end = match strsz {
        Some(size) => strtab_off.saturating_add(size),
        None => u64::MAX,
    };
    let string = |off: u64| -> Result<String, String> {
        let at = strtab_off
            .checked_add(off)
            .ok_or("string table offset overflows")?;
        cstr_at(data, at, strtab_end)
    };
    for off in needed_offs {
        deps.needed.push(string(off)?);
    }
    if let Some(off) = soname_off {
        deps.soname = Some(string(off)?);
    }
    for off in rpath_offs {
        deps.rpath.extend(
            string(off)?
                .split(':')
                .filter(|s| !s.is_empty())
                .map(String::from),
        );
    }
    for off in runpath_offs {
        deps.runpath.extend(
            string(off)?
                .split(':')
                .filter(|s| !s.is_empty())
                .map(String::from),
        );
    }
    Ok(deps)
}

// ---------------------------------------------------------------------------------------------
// Collecting the files the binary needs
// ---------------------------------------------------------------------------------------------

/// The loader's default directories for an architecture, in search order.
fn default_lib_dirs(machine: u16) -> Vec<PathBuf> {
    let multiarch = match machine {
        EM_X86_64 => Some("x86_64-linux-gnu"),
        EM_AARCH64 => Some("aarch64-linux-gnu"),
        _ => None,
    };
    let mut dirs = Vec::new();
    if let Some(triple) = multiarch {
        dirs.push(Path::new("/lib").join(triple));
        dirs.push(Path::new("/usr/lib").join(triple));
    }
    for dir in ["/lib64", "/usr/lib64", "/lib", "/usr/lib"] {
        dirs.push(PathBuf::from(dir));
    }
    dirs
}

/// Resolve `.` and `..` lexically (image paths never exist on this host).
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for component in path.components() {
        match component {
            Component::Normal(part) => out.push(part),
            Component::ParentDir => {
                out.pop();
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    out
}

/// Expand `$ORIGIN` in an RPATH/RUNPATH entry into (host directory, image directory). Entries
/// with other dynamic string tokens, or relative ones, are skipped (the loader would resolve
/// them against the working directory, which is meaningless in the image).
fn expand_search_dir(
    entry: &str,
    host_origin: &Path,
    image_origin: &Path,
) -> Option<(PathBuf, PathBuf)> {
    let expand = |origin: &Path| {
        let origin = origin.to_string_lossy();
        entry
            .replace("${ORIGIN}", &origin)
            .replace("$ORIGIN", &origin)
    };
    let host = expand(host_origin);
    if host.contains('$') || !host.starts_with('/') {
        return None;
    }
    Some((
        PathBuf::from(host),
        normalize(Path::new(&expand(image_origin))),
    ))
}

/// Whether `path` is an ELF64 little-endian file for `machine` (the loader skips others).
fn is_compatible_elf(path: &Path, machine: u16) -> bool {
    let mut header = [0u8; 64];
    let read = std::fs::File::open(path).and_then(|mut f| f.read_exact(&mut header));
    read.is_ok() && elf_ident(&header) == Ok(machine)
}

/// One ELF object queued for dependency resolution.
struct Object {
    host: PathBuf,
    image: PathBuf,
    deps: ElfDeps,
}

/// Every file of the image root: image path → content.
fn collect_files(binary: &Path) -> Result<BTreeMap<PathBuf, Vec<u8>>, ImageError> {
    let elf_err = |path: &Path| {
        let path = path.to_path_buf();
        move |reason: String| ImageError::Elf { path, reason }
    };
    let data = std::fs::read(binary).map_err(io_err(binary))?;
    let deps = elf_dependencies(&data).map_err(elf_err(binary))?;
    let machine = deps.machine;
    let mut files = BTreeMap::new();
    files.insert(PathBuf::from(BINARY_PATH_IN_IMAGE), data);

    let Some(interp) = deps.interpreter.clone() else {
        if deps.needed.is_empty() {
            return Ok(files); // static: the binary alone
        }
        return Err(ImageError::Elf {
            path: binary.to_path_buf(),
            reason: format!(
                "needs shared libraries ({}) but has no PT_INTERP",
                deps.needed.join(", ")
            ),
        });
    };
    let interp_path = PathBuf::from(&interp);
    if !interp_path.is_absolute() {
        return Err(ImageError::Elf {
            path: binary.to_path_buf(),
            reason: format!("relative PT_INTERP {interp}"),
        });
    }
    let interp_data = std::fs::read(&interp_path).map_err(io_err(&interp_path))?;
    let interp_deps = elf_dependencies(&interp_data).map_err(elf_err(&interp_path))?;
    if interp_deps.machine != machine {
        return Err(ImageError::Elf {
            path: interp_path,
            reason: format!(
                "machine {} differs from the binary's {machine}",
                interp_deps.machine
            ),
        });
    }
    // Libraries asking for the interpreter (libc needs ld-linux) get the one already loaded.
    let mut satisfied: HashSet<String> = HashSet::new();
    if let Some(name) = interp_path.file_name() {
        satisfied.insert(name.to_string_lossy().into_owned());
    }
    if let Some(soname) = &interp_deps.soname {
        satisfied.insert(soname.clone());
    }
    files.insert(normalize(&interp_path), interp_data);

    let host_binary = std::fs::canonicalize(binary).map_err(io_err(binary))?;
    let mut queue = VecDeque::from([Object {
        host: host_binary,
        image: PathBuf::from(BINARY_PATH_IN_IMAGE),
        deps,
    }]);
    while let Some(object) = queue.pop_front() {
        for name in &object.deps.needed {
            if !satisfied.insert(name.clone()) {
                continue;
            }
            let (host, image) = resolve_library(name, &object, machine)?;
            let data = std::fs::read(&host).map_err(io_err(&host))?;
            let deps = elf_dependencies(&data).map_err(elf_err(&host))?;
            if let Some(soname) = &deps.soname {
                satisfied.insert(soname.clone());
            }
            files.insert(image.clone(), data);
            let host = std::fs::canonicalize(&host).map_err(io_err(&host))?;
            queue.push_back(Object { host, image, deps });
        }
    }
    Ok(files)
}

/// Find a `DT_NEEDED` library the way the loader would (without `ld.so.cache`, which a scratch
/// image lacks): `DT_RPATH` (only when there is no `DT_RUNPATH`), `DT_RUNPATH`, then the default
/// directories. Returns (host file, path in the image).
fn resolve_library(
    name: &str,
    object: &Object,
    machine: u16,
) -> Result<(PathBuf, PathBuf), ImageError> {
    if name.contains('/') {
        let path = PathBuf::from(name);
        if path.is_absolute() && path.is_file() {
            return Ok((path.clone(), normalize(&path)));
        }
        return Err(ImageError::LibraryNotFound {
            name: name.to_string(),
            needed_by: object.host.clone(),
            searched: vec![path],
        });
    }
    let host_origin = object.host.parent().unwrap_or(Path::new("/"));
    let image_origin = object.image.parent().unwrap_or(Path::new("/"));
    let mut dirs: Vec<(PathBuf, PathBuf)> = Vec::new();
    let deps = &object.deps;
    let rpath = if deps.runpath.is_empty() {
        deps.rpath.as_slice()
    } else {
        &[]
    };
    for entry in rpath.iter().chain(&deps.runpath) {
        dirs.extend(expand_search_dir(entry, host_origin, image_origin));
    }
    dirs.extend(
        default_lib_dirs(machine)
            .into_iter()
            .map(|d| (d.clone(), d)),
    );

    for (host_dir, image_dir) in &dirs {
        let candidate = host_dir.join(name);
        if candidate.is_file() && is_compatible_elf(&candidate, machine) {
            return Ok((candidate, image_dir.join(name)));
        }
    }
    Err(ImageError::LibraryNotFound {
        name: name.to_string(),
        needed_by: object.host.clone(),
        searched: dirs.into_iter().map(|(host, _)| host).collect(),
    })
}

// ---------------------------------------------------------------------------------------------
// The build context
// ---------------------------------------------------------------------------------------------

/// A deterministic build context for the decky image.
#[derive(Clone, PartialEq, Eq)]
pub struct ImageContext {
    /// The tar body sent to `POST /build`.
    pub tar: Vec<u8>,
    /// `decnet-decky:<first 16 hex of sha256(tar)>`.
    pub tag: String,
    /// The image's files (absolute paths inside the image), sorted: the binary, and for a
    /// dynamic binary its interpreter and libraries.
    pub files: Vec<PathBuf>,
}

impl std::fmt::Debug for ImageContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImageContext")
            .field("tar", &format_args!("<{} bytes>", self.tar.len()))
            .field("tag", &self.tag)
            .field("files", &self.files)
            .finish()
    }
}

/// The tag for a build context: `decnet-decky:<first 16 hex of sha256(tar)>`.
pub fn context_tag(tar: &[u8]) -> String {
    let digest = Sha256::digest(tar);
    let mut tag = format!("{IMAGE_REPOSITORY}:");
    for byte in &digest[..8] {
        let _ = write!(tag, "{byte:02x}");
    }
    tag
}

/// Build the `FROM scratch` context for `binary`: the binary at `/decnet-decky` and, when it is
/// dynamically linked, its interpreter and shared libraries; a Dockerfile and `.dockerignore`.
pub fn build_context(binary: &Path) -> Result<ImageContext, ImageError> {
    let files = collect_files(binary)?;

    // Every parent directory gets its own entry, so the tar fully describes the tree.
    let mut dirs = BTreeSet::new();
    for path in files.keys() {
        let mut parent = path.parent();
        while let Some(dir) = parent.filter(|d| *d != Path::new("/")) {
            dirs.insert(dir.to_path_buf());
            parent = dir.parent();
        }
    }

    enum Entry<'a> {
        Dir,
        File(&'a [u8], u32),
    }
    let relative = |p: &Path| p.to_string_lossy().trim_start_matches('/').to_string();
    let mut entries: BTreeMap<String, Entry<'_>> = BTreeMap::new();
    entries.insert(
        "Dockerfile".to_string(),
        Entry::File(DOCKERFILE.as_bytes(), 0o644),
    );
    entries.insert(
        ".dockerignore".to_string(),
        Entry::File(DOCKERIGNORE.as_bytes(), 0o644),
    );
    for dir in &dirs {
        entries.insert(relative(dir), Entry::Dir);
    }
    for (path, data) in &files {
        entries.insert(relative(path), Entry::File(data, 0o755));
    }

    let tar_err = |source| ImageError::Io {
        path: PathBuf::from("<build context tar>"),
        source,
    };
    let mut builder = tar::Builder::new(Vec::new());
    for (path, entry) in &entries {
        let mut header = tar::Header::new_gnu();
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(0);
        match entry {
            Entry::Dir => {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_mode(0o755);
                header.set_size(0);
                builder
                    .append_data(&mut header, format!("{path}/"), std::io::empty())
                    .map_err(tar_err)?;
            }
            Entry::File(data, mode) => {
                header.set_entry_type(tar::EntryType::Regular);
                header.set_mode(*mode);
                header.set_size(data.len() as u64);
                builder
                    .append_data(&mut header, path, *data)
                    .map_err(tar_err)?;
            }
        }
    }
    let tar = builder.into_inner().map_err(tar_err)?;
    Ok(ImageContext {
        tag: context_tag(&tar),
        tar,
        files: files.into_keys().collect(),
    })
}

// ---------------------------------------------------------------------------------------------
// Docker
// ---------------------------------------------------------------------------------------------

/// The socket `connect` uses: `DOCKER_HOST` when it is a `unix://` URL, else the default.
fn docker_socket() -> String {
    std::env::var("DOCKER_HOST")
        .ok()
        .filter(|h| h.starts_with("unix://"))
        .map(|h| h.trim_start_matches("unix://").to_string())
        .unwrap_or_else(|| "/var/run/docker.sock".to_string())
}

/// Explain a failed connection: probe the socket itself to tell a missing socket from a
/// permission problem from a daemon that is not listening.
fn diagnose_connect(socket: &str, error: &BollardError) -> String {
    #[cfg(unix)]
    {
        use std::io::ErrorKind;
        match std::os::unix::net::UnixStream::connect(socket) {
            Err(e) if e.kind() == ErrorKind::NotFound => {
                return format!(
                    "the socket does not exist: is the docker daemon running? ({error})"
                )
            }
            Err(e) if e.kind() == ErrorKind::PermissionDenied => {
                return format!(
                    "permission denied on the socket: run as root or as a member of the \
                     docker group ({error})"
                )
            }
            Err(e) if e.kind() == ErrorKind::ConnectionRefused => {
                return format!(
                    "nothing listens on the socket: is the docker daemon running? ({error})"
                )
            }
            Err(e) => return format!("{e} ({error})"),
            Ok(_) => {}
        }
    }
    let _ = socket;
    format!("the daemon did not answer the version negotiation: {error}")
}

/// Connect to the local daemon (`DOCKER_HOST` when it is a `unix://` URL, else
/// `/var/run/docker.sock`) and negotiate the API version: the daemon here may speak an older
/// Engine API than bollard's default (e.g. 1.41).
pub async fn connect() -> Result<Docker, ImageError> {
    let socket = docker_socket();
    let docker = Docker::connect_with_local_defaults().map_err(|e| ImageError::Connect {
        reason: diagnose_connect(&socket, &e),
        socket: socket.clone(),
    })?;
    negotiate(docker, socket).await
}

/// [`connect`] through an explicit unix socket path.
pub async fn connect_unix(socket: &Path) -> Result<Docker, ImageError> {
    let socket = socket.to_string_lossy().into_owned();
    let docker =
        Docker::connect_with_unix(&socket, 120, bollard::API_DEFAULT_VERSION).map_err(|e| {
            ImageError::Connect {
                reason: diagnose_connect(&socket, &e),
                socket: socket.clone(),
            }
        })?;
    negotiate(docker, socket).await
}

async fn negotiate(docker: Docker, socket: String) -> Result<Docker, ImageError> {
    docker
        .negotiate_version()
        .await
        .map_err(|e| ImageError::Connect {
            reason: diagnose_connect(&socket, &e),
            socket,
        })
}

/// What [`ensure_image_outcome`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnsuredImage {
    /// The image tag (`decnet-decky:<hash>`).
    pub tag: String,
    /// Whether it had to be built (false: it already existed).
    pub built: bool,
}

fn is_not_found(error: &BollardError) -> bool {
    matches!(
        error,
        BollardError::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}

/// Make sure the decky image for `binary` exists; returns its tag. An image with that tag is
/// reused at once; otherwise it is built with the classic builder, never pulling anything.
pub async fn ensure_image(docker: &Docker, binary: &Path) -> Result<String, ImageError> {
    ensure_image_outcome(docker, binary).await.map(|e| e.tag)
}

/// [`ensure_image`], also telling whether the image was built.
pub async fn ensure_image_outcome(
    docker: &Docker,
    binary: &Path,
) -> Result<EnsuredImage, ImageError> {
    let context = build_context(binary)?;
    let tag = context.tag.clone();
    match docker.inspect_image(&tag).await {
        Ok(_) => {
            tracing::debug!(%tag, "decky image present");
            return Ok(EnsuredImage { tag, built: false });
        }
        Err(e) if is_not_found(&e) => {}
        Err(source) => {
            return Err(ImageError::Docker {
                action: format!("inspect image {tag}"),
                source,
            })
        }
    }
    tracing::info!(%tag, binary = %binary.display(), files = context.files.len(),
        bytes = context.tar.len(), "building decky image");

    let labels = std::collections::HashMap::from([(MANAGED_LABEL_KEY, MANAGED_LABEL_VALUE)]);
    // Classic builder (BuilderV1 is bollard's default version); `pull` is left unset, which the
    // daemon reads as false: nothing is ever pulled (FROM scratch needs nothing anyway).
    let options = BuildImageOptionsBuilder::new()
        .dockerfile("Dockerfile")
        .t(&tag)
        .rm(true)
        .forcerm(true)
        .labels(&labels)
        .build();
    let body = bollard::body_full(bytes::Bytes::from(context.tar));
    let mut stream = docker.build_image(options, None, Some(body));
    while let Some(item) = stream.next().await {
        match item {
            Ok(info) => {
                if let Some(message) = info
                    .error
                    .or_else(|| info.error_detail.and_then(|d| d.message))
                {
                    return Err(ImageError::Build { tag, message });
                }
                if let Some(line) = info.stream {
                    let line = line.trim_end();
                    if !line.is_empty() {
                        tracing::debug!(%tag, "build: {line}");
                    }
                }
            }
            Err(BollardError::DockerStreamError { error }) => {
                return Err(ImageError::Build {
                    tag,
                    message: error,
                })
            }
            Err(source) => {
                return Err(ImageError::Docker {
                    action: format!("build image {tag}"),
                    source,
                })
            }
        }
    }
    // The stream can end without an error yet without an image (daemon-side abort): check.
    docker
        .inspect_image(&tag)
        .await
        .map_err(|source| ImageError::Docker {
            action: format!("inspect freshly built image {tag}"),
            source,
        })?;
    tracing::info!(%tag, "decky image built");
    Ok(EnsuredImage { tag, built: true })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal ELF64 little-endian header with no program headers at all (a static file as
    /// far as this reader is concerned), for `machine`.
    fn synthetic_elf(machine: u16) -> Vec<u8> {
        let mut elf = vec![0u8; 64];
        elf[..4].copy_from_slice(b"\x7fELF");
        elf[4] = 2; // ELFCLASS64
        elf[5] = 1; // little-endian
        elf[6] = 1; // EV_CURRENT
        elf[16..18].copy_from_slice(&2u16.to_le_bytes()); // ET_EXEC
        elf[18..20].copy_from_slice(&machine.to_le_bytes());
        elf[52..54].copy_from_slice(&64u16.to_le_bytes()); // e_ehsize
        elf[54..56].copy_from_slice(&56u16.to_le_bytes()); // e_phentsize
        elf
    }

    /// Append a PT_INTERP program header pointing at `interp` to a synthetic ELF.
    fn with_interp(mut elf: Vec<u8>, interp: &str) -> Vec<u8> {
        let phoff = elf.len() as u64;
        let data_off = phoff + 56;
        elf[32..40].copy_from_slice(&phoff.to_le_bytes());
        elf[56..58].copy_from_slice(&1u16.to_le_bytes());
        let mut ph = vec![0u8; 56];
        ph[..4].copy_from_slice(&PT_INTERP.to_le_bytes());
        ph[8..16].copy_from_slice(&data_off.to_le_bytes());
        ph[32..40].copy_from_slice(&(interp.len() as u64 + 1).to_le_bytes());
        elf.extend(ph);
        elf.extend(interp.as_bytes());
        elf.push(0);
        elf
    }

    #[test]
    fn reads_interpreter_and_needed_of_bin_ls() {
        let data = std::fs::read("/bin/ls").unwrap();
        let deps = elf_dependencies(&data).unwrap();
        assert_eq!(deps.machine, EM_X86_64);
        let interp = deps.interpreter.expect("/bin/ls is dynamic");
        assert!(
            interp.starts_with('/') && interp.contains("ld-linux"),
            "{interp}"
        );
        assert!(
            deps.needed.iter().any(|n| n == "libc.so.6"),
            "{:?}",
            deps.needed
        );
    }

    #[test]
    fn reads_soname_of_libc() {
        let data = std::fs::read("/lib/x86_64-linux-gnu/libc.so.6").unwrap();
        let deps = elf_dependencies(&data).unwrap();
        assert_eq!(deps.soname.as_deref(), Some("libc.so.6"));
        assert!(deps.interpreter.is_some() || !deps.needed.is_empty());
    }

    #[test]
    fn rejects_what_is_not_elf64_le() {
        let check = |data: &[u8], want: &str| {
            let err = elf_dependencies(data).unwrap_err();
            assert!(err.contains(want), "{err} should contain {want}");
        };
        check(b"#!/bin/sh\necho hi\n", "no ELF header");
        let mut elf32 = synthetic_elf(EM_X86_64);
        elf32[4] = 1;
        check(&elf32, "not 64-bit");
        let mut big = synthetic_elf(EM_X86_64);
        big[5] = 2;
        check(&big, "big-endian");
        let mut relocatable = synthetic_elf(EM_X86_64);
        relocatable[16] = 1;
        check(&relocatable, "neither an executable");
        let truncated = with_interp(synthetic_elf(EM_X86_64), "/lib64/ld.so");
        check(&truncated[..100], "truncated");
    }

    #[test]
    fn synthetic_interp_is_read() {
        let elf = with_interp(synthetic_elf(EM_X86_64), "/lib64/ld-linux-x86-64.so.2");
        let deps = elf_dependencies(&elf).unwrap();
        assert_eq!(
            deps.interpreter.as_deref(),
            Some("/lib64/ld-linux-x86-64.so.2")
        );
        assert!(deps.needed.is_empty());
    }

    #[test]
    fn static_binary_context_holds_just_the_binary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("static-decky");
        std::fs::write(&path, synthetic_elf(EM_X86_64)).unwrap();
        let ctx = build_context(&path).unwrap();
        assert_eq!(ctx.files, vec![PathBuf::from("/decnet-decky")]);
        let mut archive = tar::Archive::new(ctx.tar.as_slice());
        let names: Vec<String> = archive
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, vec![".dockerignore", "Dockerfile", "decnet-decky"]);
        assert_eq!(ctx.tag, build_context(&path).unwrap().tag);
    }

    #[test]
    fn dynamic_without_interpreter_is_refused() {
        // /bin/ls with its PT_INTERP turned into PT_NULL: needs libraries, has no loader.
        let mut data = std::fs::read("/bin/ls").unwrap();
        let phoff = u64_at(&data, 32).unwrap() as usize;
        let phentsize = u16_at(&data, 54).unwrap() as usize;
        let phnum = u16_at(&data, 56).unwrap() as usize;
        for i in 0..phnum {
            let at = phoff + i * phentsize;
            if u32_at(&data, at as u64).unwrap() == PT_INTERP {
                data[at..at + 4].copy_from_slice(&0u32.to_le_bytes());
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("no-interp");
        std::fs::write(&path, data).unwrap();
        let err = build_context(&path).unwrap_err().to_string();
        assert!(
            err.contains("no PT_INTERP") && err.contains("libc.so.6"),
            "{err}"
        );
    }

    #[test]
    fn bin_ls_context_has_loader_and_libraries() {
        let ctx = build_context(Path::new("/bin/ls")).unwrap();
        let deps = elf_dependencies(&std::fs::read("/bin/ls").unwrap()).unwrap();
        let interp = PathBuf::from(deps.interpreter.unwrap());
        assert!(ctx.files.contains(&interp), "{:?}", ctx.files);
        for name in &deps.needed {
            assert!(
                ctx.files
                    .iter()
                    .any(|f| f.file_name().unwrap() == name.as_str()),
                "{name} missing from {:?}",
                ctx.files
            );
        }
        // libc's own DT_NEEDED on ld-linux is satisfied by the interpreter, not packed twice.
        let loaders = ctx
            .files
            .iter()
            .filter(|f| f.to_string_lossy().contains("ld-linux"))
            .count();
        assert_eq!(loaders, 1, "{:?}", ctx.files);
    }

    #[test]
    fn runpath_origin_is_expanded_for_host_and_image() {
        let (host, image) =
            expand_search_dir("$ORIGIN/../lib", Path::new("/opt/app/bin"), Path::new("/")).unwrap();
        assert_eq!(host, PathBuf::from("/opt/app/bin/../lib"));
        assert_eq!(image, PathBuf::from("/lib"));
        let (_, image) =
            expand_search_dir("${ORIGIN}/x", Path::new("/a"), Path::new("/usr/lib")).unwrap();
        assert_eq!(image, PathBuf::from("/usr/lib/x"));
        assert_eq!(
            expand_search_dir("$LIB/x", Path::new("/a"), Path::new("/")),
            None
        );
        assert_eq!(
            expand_search_dir("rel/dir", Path::new("/a"), Path::new("/")),
            None
        );
    }

    #[test]
    fn finds_binary_next_to_exe_then_above_deps() {
        let root = tempfile::tempdir().unwrap();
        let profile = root.path().join("target/debug");
        let deps = profile.join("deps");
        std::fs::create_dir_all(&deps).unwrap();
        let test_exe = deps.join("image-0123");

        let err = find_decky_binary_from(None, &test_exe).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("cargo build --release"), "{msg}");
        assert!(
            msg.contains(&deps.join(DECKY_BINARY_NAME).display().to_string()),
            "{msg}"
        );
        assert!(
            msg.contains(&profile.join(DECKY_BINARY_NAME).display().to_string()),
            "{msg}"
        );

        std::fs::write(profile.join(DECKY_BINARY_NAME), b"x").unwrap();
        assert_eq!(
            find_decky_binary_from(None, &test_exe).unwrap(),
            profile.join(DECKY_BINARY_NAME)
        );
        // Next to the executable wins (a release install: decnet and decnet-decky side by side).
        assert_eq!(
            find_decky_binary_from(None, &profile.join("decnet")).unwrap(),
            profile.join(DECKY_BINARY_NAME)
        );
        std::fs::write(deps.join(DECKY_BINARY_NAME), b"x").unwrap();
        assert_eq!(
            find_decky_binary_from(None, &test_exe).unwrap(),
            deps.join(DECKY_BINARY_NAME)
        );

        // An explicit path is used as given, or refused by name.
        let explicit = root.path().join("elsewhere/decky");
        let msg = find_decky_binary(Some(&explicit)).unwrap_err().to_string();
        assert!(msg.contains(&explicit.display().to_string()), "{msg}");
        std::fs::create_dir_all(explicit.parent().unwrap()).unwrap();
        std::fs::write(&explicit, b"x").unwrap();
        assert_eq!(find_decky_binary(Some(&explicit)).unwrap(), explicit);
    }

    #[tokio::test]
    async fn a_missing_socket_is_named_as_such() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("docker.sock");
        let msg = connect_unix(&socket).await.unwrap_err().to_string();
        assert!(msg.contains(&socket.display().to_string()), "{msg}");
        assert!(msg.contains("does not exist"), "{msg}");

        // Something at the path that no daemon listens on.
        std::fs::write(&socket, b"").unwrap();
        let msg = connect_unix(&socket).await.unwrap_err().to_string();
        assert!(msg.contains("docker daemon"), "{msg}");
    }

    #[test]
    fn tag_is_a_prefix_of_the_sha256() {
        // sha256("") = e3b0c44298fc1c149afbf4c8996fb924...
        assert_eq!(context_tag(b""), "decnet-decky:e3b0c44298fc1c14");
    }
}
