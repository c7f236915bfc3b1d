//! Version parsing: fixed cases with their exact messages, then properties
//! over arbitrary input.

use std::cmp::Ordering;

use plumbline_compat::{ComputeCapability, CudaVersion, DriverVersion, ToolkitVersion};
use proptest::prelude::*;

#[test]
fn driver_versions_accepted() {
    // (description, input, parts, branch, display)
    let cases: [(&str, &str, &[u32], u32, &str); 6] = [
        ("two parts", "550.120", &[550, 120], 550, "550.120"),
        ("three parts", "550.54.15", &[550, 54, 15], 550, "550.54.15"),
        (
            "zero-padded third part",
            "580.65.06",
            &[580, 65, 6],
            580,
            "580.65.06",
        ),
        (
            "two parts, as 12.8 GA's minimum",
            "570.26",
            &[570, 26],
            570,
            "570.26",
        ),
        (
            "long middle part",
            "470.256.02",
            &[470, 256, 2],
            470,
            "470.256.02",
        ),
        (
            "largest u32",
            "4294967295.0",
            &[u32::MAX, 0],
            u32::MAX,
            "4294967295.0",
        ),
    ];
    for (description, input, parts, branch, display) in cases {
        let v = DriverVersion::parse(input).unwrap();
        assert_eq!(v.parts(), parts, "{description}");
        assert_eq!(v.branch(), branch, "{description}");
        assert_eq!(v.to_string(), display, "{description}");
        assert_eq!(
            input.parse::<DriverVersion>().unwrap(),
            v,
            "{description}: FromStr"
        );
    }
}

#[test]
fn driver_versions_refused_with_a_message() {
    // (description, input, kind, message)
    let cases = [
        (
            "empty",
            "",
            "empty",
            r#"invalid driver version "": it is empty"#,
        ),
        (
            "branch only",
            "550",
            "part_count",
            r#"invalid driver version "550": expected 2 or 3 dot-separated parts, found 1"#,
        ),
        (
            "a wildcard",
            "550.x",
            "not_a_number",
            r#"invalid driver version "550.x": part 2 "x" is not a number"#,
        ),
        (
            "four parts",
            "1.2.3.4",
            "part_count",
            r#"invalid driver version "1.2.3.4": expected 2 or 3 dot-separated parts, found 4"#,
        ),
        (
            "leading space",
            " 550.54",
            "not_a_number",
            r#"invalid driver version " 550.54": part 1 " 550" is not a number"#,
        ),
        (
            "trailing newline",
            "550.54.15\n",
            "not_a_number",
            r#"invalid driver version "550.54.15\n": part 3 "15\n" is not a number"#,
        ),
        (
            "empty part",
            "550..15",
            "not_a_number",
            r#"invalid driver version "550..15": part 2 "" is not a number"#,
        ),
        (
            "trailing dot",
            "550.54.",
            "not_a_number",
            r#"invalid driver version "550.54.": part 3 "" is not a number"#,
        ),
        (
            "a sign",
            "+550.54",
            "not_a_number",
            r#"invalid driver version "+550.54": part 1 "+550" is not a number"#,
        ),
        (
            "larger than u32",
            "4294967296.1",
            "out_of_range",
            r#"invalid driver version "4294967296.1": part 1 "4294967296" is out of range"#,
        ),
        (
            "absurd zero padding",
            "00000000000550.1",
            "out_of_range",
            r#"invalid driver version "00000000000550.1": part 1 "00000000000550" is out of range"#,
        ),
        (
            "a prefix",
            "v550.54",
            "not_a_number",
            r#"invalid driver version "v550.54": part 1 "v550" is not a number"#,
        ),
    ];
    for (description, input, kind, message) in cases {
        let err = DriverVersion::parse(input).unwrap_err();
        assert_eq!(err.kind(), kind, "{description}");
        assert_eq!(err.to_string(), message, "{description}");
    }
}

#[test]
fn driver_version_ordering() {
    // (description, smaller, larger)
    let cases = [
        ("numeric, not textual", "550.54.15", "550.120"),
        ("patch", "550.54.14", "550.54.15"),
        ("branch first", "535.230.02", "550.54.14"),
        (
            "two-part before three-part with the same start",
            "550.120",
            "550.120.0",
        ),
        ("two-part before a larger three-part", "570.26", "570.26.1"),
        ("zero padding does not count", "580.65.05", "580.65.6"),
    ];
    for (description, a, b) in cases {
        let a = DriverVersion::parse(a).unwrap();
        let b = DriverVersion::parse(b).unwrap();
        assert!(a < b, "{description}");
        assert_eq!(b.cmp(&a), Ordering::Greater, "{description}");
    }
    assert_eq!(
        DriverVersion::parse("580.65.06").unwrap(),
        DriverVersion::parse("580.65.6").unwrap(),
        "zero padding does not make a different version"
    );
}

#[test]
fn cuda_versions() {
    // (description, input, major, minor)
    let accepted = [
        ("major.minor", "12.4", 12, 4),
        ("with a patch", "12.4.1", 12, 4),
        ("with version.json's date", "12.6.20241114", 12, 6),
        ("two-digit minor", "11.10", 11, 10),
    ];
    for (description, input, major, minor) in accepted {
        let v = CudaVersion::parse(input).unwrap();
        assert_eq!(v, CudaVersion::new(major, minor), "{description}");
        assert_eq!(input.parse::<CudaVersion>().unwrap(), v, "{description}");
    }
    let refused = [
        (
            "major only",
            "12",
            r#"invalid CUDA version "12": expected 2 or 3 dot-separated parts, found 1"#,
        ),
        ("empty", "", r#"invalid CUDA version "": it is empty"#),
        (
            "four parts",
            "12.4.1.2",
            r#"invalid CUDA version "12.4.1.2": expected 2 or 3 dot-separated parts, found 4"#,
        ),
        (
            "a word",
            "12.x",
            r#"invalid CUDA version "12.x": part 2 "x" is not a number"#,
        ),
        (
            "a prefix",
            "V12.4",
            r#"invalid CUDA version "V12.4": part 1 "V12" is not a number"#,
        ),
    ];
    for (description, input, message) in refused {
        let err = CudaVersion::parse(input).unwrap_err();
        assert_eq!(err.to_string(), message, "{description}");
    }
}

#[test]
fn cuda_version_codes() {
    // (description, version, NVML code, label code)
    let cases = [
        ("12.8", "12.8", 12080, 1208),
        ("13.0", "13.0", 13000, 1300),
        ("12.4", "12.4", 12040, 1204),
        ("11.0", "11.0", 11000, 1100),
        ("13.3", "13.3", 13030, 1303),
    ];
    for (description, version, nvml, label) in cases {
        let v = CudaVersion::parse(version).unwrap();
        assert_eq!(v.code(), nvml, "{description}");
        assert_eq!(v.label_code(), label, "{description}");
        assert_eq!(
            CudaVersion::from_nvml_code(i32::try_from(nvml).unwrap()),
            Some(v),
            "{description}"
        );
        assert_eq!(v.to_string(), version, "{description}");
    }
    for (description, code) in [
        ("zero", 0),
        ("negative", -12080),
        ("not a multiple of ten", 12085),
        ("no major", 990),
    ] {
        assert_eq!(CudaVersion::from_nvml_code(code), None, "{description}");
    }
}

#[test]
fn toolkit_versions() {
    // (description, input, CUDA, display)
    let cases = [
        ("cudart version", "12.6.77", "12.6", "12.6.77"),
        ("old version.txt", "10.2.89", "10.2", "10.2.89"),
        ("nvcc's V-less release", "12.4.131", "12.4", "12.4.131"),
        (
            "version.json's dated form",
            "12.6.20241114",
            "12.6",
            "12.6.20241114",
        ),
        ("major.minor only", "13.0", "13.0", "13.0"),
        ("with a build number", "11.8.89.1", "11.8", "11.8.89.1"),
    ];
    for (description, input, cuda, display) in cases {
        let v = ToolkitVersion::parse(input).unwrap();
        assert_eq!(v.cuda(), CudaVersion::parse(cuda).unwrap(), "{description}");
        assert_eq!(v.to_string(), display, "{description}");
        assert_eq!(input.parse::<ToolkitVersion>().unwrap(), v, "{description}");
    }
    for (description, input) in [
        ("major only", "12"),
        ("five parts", "1.2.3.4.5"),
        ("nvcc's V prefix", "V12.4.131"),
        ("empty", ""),
    ] {
        assert!(ToolkitVersion::parse(input).is_err(), "{description}");
    }
    assert!(ToolkitVersion::parse("12.6.77").unwrap() < ToolkitVersion::parse("12.6.85").unwrap());
    assert!(ToolkitVersion::parse("12.6").unwrap() < ToolkitVersion::parse("12.6.0").unwrap());
    assert!(ToolkitVersion::parse("12.10.0").unwrap() > ToolkitVersion::parse("12.9.9").unwrap());
}

#[test]
fn compute_capabilities() {
    for (description, input, major, minor) in [
        ("Hopper", "9.0", 9, 0),
        ("GB10", "12.1", 12, 1),
        ("Kepler", "3.7", 3, 7),
    ] {
        let v = ComputeCapability::parse(input).unwrap();
        assert_eq!((v.major, v.minor), (major, minor), "{description}");
        assert_eq!(v.to_string(), input, "{description}");
    }
    for (description, input) in [
        ("major only", "9"),
        ("three parts", "9.0.1"),
        ("sm_ form", "sm_90"),
    ] {
        assert!(ComputeCapability::parse(input).is_err(), "{description}");
    }
    assert!(ComputeCapability::parse("10.0").unwrap() > ComputeCapability::parse("9.0").unwrap());
}

fn driver_text() -> impl Strategy<Value = String> {
    (
        any::<u32>(),
        any::<u32>(),
        proptest::option::of(any::<u32>()),
        0usize..3,
    )
        .prop_map(|(a, b, c, pad)| {
            let part = |n: u32| format!("{n:0width$}", width = pad + 1);
            match c {
                Some(c) => format!("{a}.{}.{}", part(b), part(c)),
                None => format!("{a}.{}", part(b)),
            }
        })
}

proptest! {
    #[test]
    fn parsers_never_panic(s in "\\PC*") {
        let _ = DriverVersion::parse(&s);
        let _ = CudaVersion::parse(&s);
        let _ = ToolkitVersion::parse(&s);
        let _ = ComputeCapability::parse(&s);
    }

    #[test]
    fn parsers_never_panic_on_version_like_text(s in "[0-9.+\\- x]{0,24}") {
        let _ = DriverVersion::parse(&s);
        let _ = CudaVersion::parse(&s);
        let _ = ToolkitVersion::parse(&s);
        let _ = ComputeCapability::parse(&s);
    }

    #[test]
    fn driver_display_round_trips_exactly(s in driver_text()) {
        let v = DriverVersion::parse(&s).unwrap();
        prop_assert_eq!(v.to_string(), s.clone());
        prop_assert_eq!(DriverVersion::parse(&v.to_string()).unwrap(), v);
    }

    #[test]
    fn driver_order_is_numeric_tuple_order(a in driver_text(), b in driver_text()) {
        let va = DriverVersion::parse(&a).unwrap();
        let vb = DriverVersion::parse(&b).unwrap();
        // Slices compare lexicographically, a proper prefix first.
        prop_assert_eq!(va.cmp(&vb), va.parts().cmp(vb.parts()));
        prop_assert_eq!(va.cmp(&vb), vb.cmp(&va).reverse());
        prop_assert_eq!(va == vb, va.cmp(&vb) == Ordering::Equal);
    }

    #[test]
    fn driver_order_is_transitive(a in driver_text(), b in driver_text(), c in driver_text()) {
        let mut v = [a, b, c].map(|s| DriverVersion::parse(&s).unwrap());
        v.sort();
        prop_assert!(v[0] <= v[1] && v[1] <= v[2] && v[0] <= v[2]);
    }

    #[test]
    fn cuda_display_round_trips(major in any::<u32>(), minor in any::<u32>()) {
        let v = CudaVersion::new(major, minor);
        prop_assert_eq!(CudaVersion::parse(&v.to_string()).unwrap(), v);
    }

    #[test]
    fn cuda_order_is_numeric(a in (0u32..100, 0u32..100), b in (0u32..100, 0u32..100)) {
        let va = CudaVersion::new(a.0, a.1);
        let vb = CudaVersion::new(b.0, b.1);
        prop_assert_eq!(va.cmp(&vb), a.cmp(&b));
        // The encodings keep the order while minors stay below 100.
        prop_assert_eq!(va.code().cmp(&vb.code()), a.cmp(&b));
        prop_assert_eq!(va.label_code().cmp(&vb.label_code()), a.cmp(&b));
    }

    #[test]
    fn nvml_codes_round_trip(major in 1u32..1000, minor in 0u32..100) {
        let v = CudaVersion::new(major, minor);
        let code = i32::try_from(v.code()).unwrap();
        prop_assert_eq!(CudaVersion::from_nvml_code(code), Some(v));
    }

    #[test]
    fn toolkit_display_round_trips_and_orders_numerically(
        a in proptest::collection::vec(any::<u32>(), 2..=4),
        b in proptest::collection::vec(any::<u32>(), 2..=4),
    ) {
        let text = |p: &[u32]| p.iter().map(u32::to_string).collect::<Vec<_>>().join(".");
        let va = ToolkitVersion::parse(&text(&a)).unwrap();
        let vb = ToolkitVersion::parse(&text(&b)).unwrap();
        prop_assert_eq!(va.to_string(), text(&a));
        prop_assert_eq!(va.parts(), a.as_slice());
        prop_assert_eq!(va.cmp(&vb), a.cmp(&b));
        prop_assert_eq!(va.cuda(), CudaVersion::new(a[0], a[1]));
    }
}
