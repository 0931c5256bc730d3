//! The parameterization and the Karras grid against the reference tables (cm_reference §a, §b),
//! computed there in float64.

use cmpaint::engine::cm::param::{boundary_scalings, c_noise};
use cmpaint::engine::cm::schedule::{karras_sigma, karras_sigmas, sigmas_from_ts, validate_ts};
use cmpaint::engine::model::spec::SamplingConfig;

/// Relative tolerance, plus half a unit of the table's sixth decimal (it prints some values to 6 places).
fn close(a: f64, b: f64, rel: f64) -> bool {
    (a - b).abs() <= rel * b.abs() + 5e-7
}

#[test]
fn scalings_match_the_reference_table() {
    // (N, i, σ, c_noise, c_skip, c_out, c_in) — cm_reference §a, as printed there.
    let table = [
        (40, 0, 80.0, 1095.5067, 3.906293e-05, 0.499978, 0.012500),
        (40, 16, 5.380004, 420.6723, 8.569588e-03, 0.497670, 0.185076),
        (40, 17, 4.365562, 368.4367, 1.295963e-02, 0.496525, 0.227578),
        (40, 18, 3.519699, 314.5939, 1.980323e-02, 0.494749, 0.281291),
        (40, 20, 2.240440, 201.6680, 4.752298e-02, 0.487560, 0.435625),
        (40, 22, 1.382368, 80.9495, 1.159869e-01, 0.469508, 0.680266),
        (
            40,
            38,
            0.003677,
            -1401.4425,
            9.999888e-01,
            0.001677,
            1.999946,
        ),
        (
            201,
            106,
            1.912844,
            162.1477,
            6.408082e-02,
            0.483241,
            0.505788,
        ),
        (
            151,
            67,
            3.991219,
            346.0242,
            1.546660e-02,
            0.495874,
            0.248607,
        ),
        (
            151,
            62,
            5.248503,
            414.4857,
            9.000642e-03,
            0.497557,
            0.189672,
        ),
    ];
    let cfg = SamplingConfig::default();
    for (n, i, sigma, cn, skip, out, cin) in table {
        let s = karras_sigma(i, n, &cfg);
        assert!(close(s, sigma, 2e-6), "σ_{i} of N={n}: {s} vs {sigma}");
        assert!(
            close(c_noise(s), cn, 1e-6),
            "c_noise at σ_{i}: {}",
            c_noise(s)
        );
        let sc = boundary_scalings(s, 0.5, 0.002);
        assert!(
            close(sc.c_skip, skip, 1e-5),
            "c_skip at σ_{i}: {}",
            sc.c_skip
        );
        assert!(close(sc.c_out, out, 1e-5), "c_out at σ_{i}: {}", sc.c_out);
        assert!(close(sc.c_in, cin, 1e-5), "c_in at σ_{i}: {}", sc.c_in);
    }
}

#[test]
fn boundary_condition_is_exact() {
    let sc = boundary_scalings(0.002, 0.5, 0.002);
    assert_eq!(sc.c_skip, 1.0);
    assert_eq!(sc.c_out, 0.0);
}

#[test]
fn grid_endpoints_are_exact_and_descending() {
    let cfg = SamplingConfig::default();
    let s = karras_sigmas(40, &cfg);
    assert_eq!(s[0], 80.0);
    assert!((s[39] - 0.002).abs() < 1e-15);
    assert!(s.windows(2).all(|w| w[0] > w[1]));
    // a few of the N = 40 grid values listed in cm_reference §b
    for (i, v) in [(1, 69.4509), (10, 16.7799), (25, 0.625398), (33, 0.0420707)] {
        assert!(close(s[i], v, 1e-5), "σ_{i} = {}", s[i]);
    }
    assert_eq!(
        sigmas_from_ts(&[0, 22, 39], 40, &cfg),
        vec![s[0], s[22], s[39]]
    );
}

#[test]
fn ts_lists_are_checked() {
    assert!(validate_ts(&[0, 22, 39], 40).is_ok());
    assert!(validate_ts(&[0], 40).unwrap_err().contains("at least two"));
    assert!(
        validate_ts(&[0, 22, 22, 39], 40)
            .unwrap_err()
            .contains("increasing")
    );
    assert!(validate_ts(&[0, 40], 40).unwrap_err().contains("outside"));
}
