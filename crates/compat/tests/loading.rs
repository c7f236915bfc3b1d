//! Loading data files: the embedded one, replacements from disk, and the
//! messages a broken file gets.

use std::path::PathBuf;

use plumbline_compat::{
    CompatDb, CompatError, CudaVersion, DriverVersion, EMBEDDED_ORIGIN, EMBEDDED_TOML, Position,
};

/// The 1-based line on which `needle` first starts in `text`.
fn line_of(text: &str, needle: &str) -> usize {
    let at = text
        .find(needle)
        .unwrap_or_else(|| panic!("{needle:?} not in text"));
    text[..at].matches('\n').count() + 1
}

/// The 1-based line of the `n`th (0-based) occurrence of `needle`.
fn line_of_nth(text: &str, needle: &str, n: usize) -> usize {
    let (at, _) = text
        .match_indices(needle)
        .nth(n)
        .unwrap_or_else(|| panic!("{needle:?} occurs fewer than {} times", n + 1));
    text[..at].matches('\n').count() + 1
}

/// The embedded file with `from` replaced (once) by `to`.
fn edited(from: &str, to: &str) -> String {
    assert!(
        EMBEDDED_TOML.contains(from),
        "{from:?} not in the embedded file"
    );
    EMBEDDED_TOML.replacen(from, to, 1)
}

fn load_err(text: &str) -> CompatError {
    match CompatDb::from_toml_str(text, "test.toml") {
        Ok(_) => panic!("the edited file was accepted"),
        Err(err) => err,
    }
}

/// A unique scratch directory for one test, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir =
            std::env::temp_dir().join(format!("plumbline-compat-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("the temporary directory is writable");
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn embedded_file_parses_and_names_itself() {
    let db = CompatDb::embedded();
    assert_eq!(db.data_version(), "2026-11-22");
    assert_eq!(db.origin(), EMBEDDED_ORIGIN);
    assert!(db.description().is_some());
    assert!(std::ptr::eq(db, CompatDb::embedded()), "parsed once");
    // Parsing the same text again gives the same answers.
    let again = CompatDb::from_toml_str(EMBEDDED_TOML, "copy").unwrap();
    assert_eq!(
        again.known_branches().collect::<Vec<_>>(),
        db.known_branches().collect::<Vec<_>>()
    );
}

#[test]
fn a_file_on_disk_replaces_the_embedded_data() {
    let dir = Scratch::new("override");
    let path = dir.0.join("compat.toml");
    let text = edited(
        "dataVersion = \"2026-11-22\"",
        "dataVersion = \"2027-02-01\"",
    ) + "\n[[branch]]\nbranch = 620\ncuda = \"13.5\"\nconfirmed = false\n";
    std::fs::write(&path, text).unwrap();

    let db = CompatDb::load(&path).unwrap();
    assert_eq!(db.data_version(), "2027-02-01");
    assert_eq!(db.origin(), path.display().to_string());
    let driver = DriverVersion::parse("620.10.01").unwrap();
    assert_eq!(db.cuda_ceiling(&driver), Some(CudaVersion::new(13, 5)));
    assert_eq!(db.ceiling_is_confirmed(620), Some(false));
    // The embedded data is untouched.
    assert_eq!(CompatDb::embedded().cuda_ceiling(&driver), None);
}

#[test]
fn a_missing_file_names_its_path() {
    let dir = Scratch::new("missing");
    let path = dir.0.join("nope.toml");
    let err = CompatDb::load(&path).unwrap_err();
    assert_eq!(err.kind(), "read");
    let message = err.to_string();
    assert!(
        message.starts_with(&format!("reading compatibility data {}: ", path.display())),
        "{message}"
    );
}

#[test]
fn a_broken_file_on_disk_names_its_path_and_line() {
    let dir = Scratch::new("broken");
    let path = dir.0.join("compat.toml");
    let text = edited("cuda = \"12.4\"\n", "cuda = \"12.4\n");
    std::fs::write(&path, &text).unwrap();
    let err = CompatDb::load(&path).unwrap_err();
    assert_eq!(err.kind(), "syntax");
    let line = line_of(&text, "cuda = \"12.4\n");
    let message = err.to_string();
    assert!(
        message.starts_with(&format!("{}: line {line}, column ", path.display())),
        "{message}"
    );
}

#[test]
fn bad_toml_gives_line_and_column() {
    let text = "schema = 1\ndataVersion = \"x\"\n[kernelModule\nopenMinBranch = 515\n";
    let err = load_err(text);
    assert_eq!(err.kind(), "syntax");
    assert_eq!(err.position().map(|p| p.line), Some(3));
    let message = err.to_string();
    assert!(
        message.starts_with("test.toml: line 3, column "),
        "{message}"
    );
    assert!(!message.contains('\n'), "one line: {message}");
}

#[test]
fn a_bad_version_in_a_row_names_table_key_and_line() {
    let text = edited("cuda = \"12.4\"", "cuda = \"12.x\"");
    let line = line_of(&text, "cuda = \"12.x\"");
    let err = load_err(&text);
    assert_eq!(err.kind(), "invalid");
    assert_eq!(
        err.to_string(),
        format!(
            "test.toml: line {line}, column 8: [[branch]] 550, key \"cuda\": \
             invalid CUDA version \"12.x\": part 2 \"x\" is not a number"
        )
    );
    assert_eq!(err.position(), Some(Position { line, column: 8 }));
}

#[test]
fn a_bad_minimum_driver_names_the_toolkit_release() {
    let text = edited("minDriver = \"550.54.15\"", "minDriver = \"550.54.15.1\"");
    let line = line_of(&text, "minDriver = \"550.54.15.1\"");
    assert_eq!(
        load_err(&text).to_string(),
        format!(
            "test.toml: line {line}, column 13: [[toolkit]] 12.4 update 1, key \"minDriver\": \
             invalid driver version \"550.54.15.1\": expected 2 or 3 dot-separated parts, found 4"
        )
    );
}

#[test]
fn a_duplicated_branch_names_both_lines() {
    let text = format!("{EMBEDDED_TOML}\n[[branch]]\nbranch = 550\ncuda = \"12.4\"\n");
    let first = line_of(&text, "branch = 550\n");
    let second = line_of_nth(&text, "branch = 550\n", 1);
    let err = load_err(&text);
    assert_eq!(err.kind(), "duplicate");
    assert_eq!(
        err.to_string(),
        format!(
            "test.toml: line {second}, column 10: duplicate [[branch]] 550 \
             (first defined on line {first})"
        )
    );
}

#[test]
fn semantic_errors_name_where_they_are() {
    // (description, from, to, the text whose line is reported, kind, message after "line N, column M: ")
    let cases = [
        (
            "a newer branch with a lower ceiling",
            "branch = 545\ncuda = \"12.3\"",
            "branch = 545\ncuda = \"12.1\"",
            "cuda = \"12.1\"\n\n[[branch]]\nbranch = 550",
            "invalid",
            "[[branch]] 545, key \"cuda\": ceiling 12.1 is lower than 12.2 of older branch 535",
        ),
        (
            "a toolkit whose minimum driver is of an unknown branch",
            "minDriver = \"610.43.02\"",
            "minDriver = \"611.43.02\"",
            "minDriver = \"611.43.02\"",
            "invalid",
            "[[toolkit]] 13.3 GA, key \"minDriver\": branch 611 of driver 611.43.02 is not in [[branch]]",
        ),
        (
            "a toolkit whose minimum driver cannot run it",
            "minDriver = \"575.51.03\"",
            "minDriver = \"570.51.03\"",
            "minDriver = \"570.51.03\"",
            "invalid",
            "[[toolkit]] 12.9 GA, key \"minDriver\": driver 570.51.03 supports CUDA 12.8 at most (branch 570), not 12.9",
        ),
        (
            "an update needing an older driver than GA",
            "minDriver = \"580.95.05\"",
            "minDriver = \"580.60.05\"",
            "minDriver = \"580.60.05\"",
            "invalid",
            "[[toolkit]] 13.0 update 2, key \"minDriver\": 580.60.05 is older than 580.82.07 required by update 1 of the same toolkit",
        ),
        (
            "a lifecycle kind that does not exist",
            "kind = \"PB\"",
            "kind = \"LTS\"",
            "kind = \"LTS\"",
            "invalid",
            "[[branch]] 595, key \"lifecycle.kind\": unknown lifecycle kind \"LTS\" (expected LTSB, PB or NFB)",
        ),
        (
            "a lifecycle date that does not exist",
            "until = \"2027-03\"",
            "until = \"2027-13\"",
            "\"2027-13\"",
            "invalid",
            "[[branch]] 595, key \"lifecycle.until\": invalid date \"2027-13\" (expected YYYY-MM or YYYY-MM-DD)",
        ),
        (
            "minor-version compatibility from a branch of another major",
            "minorCompatMinBranch = 525",
            "minorCompatMinBranch = 520",
            "minorCompatMinBranch = 520",
            "invalid",
            "[[cudaMajor]] 12, key \"minorCompatMinBranch\": branch 520 supports CUDA 11.8, which is not CUDA 12",
        ),
        (
            "a compute capability given to the wrong architecture",
            "cc = \"8.9\"\narchitecture = \"Ada\"",
            "cc = \"8.9\"\narchitecture = \"Ampere\"",
            "\"Ampere\"\nsinceCuda = \"11.8\"",
            "invalid",
            "[[computeCapability]] 8.9, key \"architecture\": compute capability 8.9 is Ada Lovelace, not Ampere",
        ),
        (
            "an unknown architecture name",
            "name = \"Volta\"",
            "name = \"Voltaa\"",
            "\"Voltaa\"",
            "invalid",
            "[[architecture]] #4, key \"name\": unknown architecture \"Voltaa\"",
        ),
        (
            "an unknown module need",
            "name = \"Blackwell\"\nmodule = \"open\"",
            "name = \"Blackwell\"\nmodule = \"opne\"",
            "\"opne\"",
            "invalid",
            "[[architecture]] Blackwell, key \"module\": unknown module need \"opne\" (expected \"open\", \"proprietary\" or \"either\")",
        ),
        (
            "a GPU with a compute capability not in the table",
            "family = \"T4\"\nmatch = [\"T4\"]\ncc = \"7.5\"",
            "family = \"T4\"\nmatch = [\"T4\"]\ncc = \"7.6\"",
            "\"7.6\"",
            "invalid",
            "[[gpu]] \"T4\", key \"cc\": compute capability 7.6 is not in [[computeCapability]]",
        ),
        (
            "the same pattern in two GPU rows",
            "match = [\"L40S\"]",
            "match = [\"L40\"]",
            "\"L40\"]\ncc = \"8.9\"\n\n[[gpu]]\nfamily = \"RTX 6000 Ada\"",
            "duplicate",
            "duplicate [[gpu]] pattern \"L40\"",
        ),
        (
            "a GPU family listed twice",
            "family = \"A10G\"",
            "family = \"A10\"",
            "\"A10\"\nmatch = [\"A10G\"]",
            "duplicate",
            "duplicate [[gpu]] \"A10\"",
        ),
        (
            "a Fabric Manager package without its branch",
            "\"cuda-drivers-fabricmanager-{branch}\"",
            "\"cuda-drivers-fabricmanager\"",
            "\"cuda-drivers-fabricmanager\"",
            "invalid",
            "[fabricManager], key \"packages\": \"cuda-drivers-fabricmanager\" has no {branch} placeholder",
        ),
        (
            "an open-default branch before the open modules existed",
            "openDefaultFromBranch = 560",
            "openDefaultFromBranch = 510",
            "510",
            "invalid",
            "[kernelModule], key \"openDefaultFromBranch\": branch 510 is older than openMinBranch 515",
        ),
    ];
    for (description, from, to, marker, kind, message) in cases {
        let text = edited(from, to);
        let err = load_err(&text);
        let line = line_of(&text, marker);
        assert_eq!(err.kind(), kind, "{description}: {err}");
        let got = err.to_string();
        let prefix = format!("test.toml: line {line}, column ");
        assert!(got.starts_with(&prefix), "{description}: {got}");
        assert!(
            got.ends_with(message) || got.contains(&format!(": {message}")),
            "{description}: {got}"
        );
    }
}

#[test]
fn shape_errors_come_from_the_toml_reader_with_a_position() {
    // (description, from, to, the text whose line is reported, a piece of the message)
    let cases = [
        (
            "a misspelt key is refused, not ignored",
            "branch = 615\ncuda = \"13.4\"\nconfirmed = false",
            "branch = 615\ncuda = \"13.4\"\nconfimed = false",
            "confimed",
            "unknown field `confimed`",
        ),
        (
            "a branch number written as a string",
            "branch = 450\n",
            "branch = \"450\"\n",
            "\"450\"",
            "invalid type",
        ),
        (
            "a row without its ceiling",
            "branch = 455\ncuda = \"11.1\"\n",
            "branch = 455\n",
            "[[branch]]\nbranch = 455",
            "missing field `cuda`",
        ),
    ];
    for (description, from, to, marker, piece) in cases {
        let text = edited(from, to);
        let err = load_err(&text);
        assert_eq!(err.kind(), "syntax", "{description}: {err}");
        let line = line_of(&text, marker);
        let got = err.to_string();
        assert!(
            got.starts_with(&format!("test.toml: line {line}, column ")),
            "{description}: {got}"
        );
        assert!(got.contains(piece), "{description}: {got}");
    }
}

#[test]
fn schema_is_checked_before_anything_else() {
    // A newer schema may have keys this build does not know: the schema is
    // what to report.
    let text = edited("schema = 1", "schema = 2\nbrandNewTable = { x = 1 }");
    let err = load_err(&text);
    assert_eq!(err.kind(), "unsupported_schema");
    let line = line_of(&text, "schema = 2");
    assert_eq!(
        err.to_string(),
        format!(
            "test.toml: line {line}, column 10: unsupported schema 2: this build reads schema 1"
        )
    );

    let err = load_err("dataVersion = \"x\"\n");
    assert_eq!(err.kind(), "syntax");
    assert_eq!(err.to_string(), "test.toml: missing top-level key `schema`");
}

#[test]
fn every_architecture_needs_a_row() {
    let text = edited(
        "[[architecture]]\nname = \"Hopper\"\nmodule = \"either\"\n",
        "",
    );
    let err = load_err(&text);
    assert_eq!(err.kind(), "invalid");
    assert_eq!(
        err.to_string(),
        "test.toml: [[architecture]]: no row for Hopper"
    );
}

#[test]
fn an_empty_data_version_is_refused() {
    let text = edited("dataVersion = \"2026-11-22\"", "dataVersion = \" \"");
    let line = line_of(&text, "dataVersion");
    assert_eq!(
        load_err(&text).to_string(),
        format!("test.toml: line {line}, column 15: key \"dataVersion\": must not be empty")
    );
}
