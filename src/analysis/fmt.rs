//! Numbers as the report writes them: values with their unit (ms shown as s from a second up,
//! bytes as MiB/GiB), signed percentages, p-values, F and η².

/// A number with up to `sig` significant digits, no trailing zeros.
pub fn sig(x: f64, sig: usize) -> String {
    if !x.is_finite() {
        return "n/a".into();
    }
    if x == 0.0 {
        return "0".into();
    }
    if x.abs() >= 1e7 {
        return format!("{x:.2e}");
    }
    let mag = x.abs().log10().floor() as i32;
    let dec = (sig as i32 - 1 - mag).clamp(0, 6) as usize;
    let s = format!("{x:.dec$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// A value for a sentence: four significant digits (never fewer than the integer part).
pub fn num(x: f64) -> String {
    sig(x, 4)
}

/// A value in its canonical unit, written for a person: `76.59 tok/s`, `86.5 ms`, `6.29 s`,
/// `3.2 GiB`.
pub fn value(x: f64, unit: &str) -> String {
    match unit {
        "ms" if x.abs() >= 1000.0 => format!("{} s", sig(x / 1000.0, 3)),
        "ms" => format!("{} ms", sig(x, 3)),
        "B" if x.abs() >= 1073741824.0 => format!("{} GiB", sig(x / 1073741824.0, 3)),
        "B" if x.abs() >= 1048576.0 => format!("{} MiB", sig(x / 1048576.0, 3)),
        "B" => format!("{} B", sig(x, 4)),
        "" => num(x),
        u => format!("{} {u}", num(x)),
    }
}

/// A signed percentage with one decimal (`+17.5 %`, `-64.4 %`, `0.0 %`).
pub fn pct(x: f64) -> String {
    let s = format!("{x:+.1}");
    if s == "+0.0" || s == "-0.0" {
        "0.0 %".into()
    } else {
        format!("{s} %")
    }
}

/// A p-value: `p = 0.0312`, `p < 0.0001`.
pub fn p(p: f64) -> String {
    if p < 1e-4 {
        "p < 0.0001".into()
    } else {
        format!("p = {}", sig((p * 1e4).round() / 1e4, 3))
    }
}

/// An F statistic with its degrees of freedom: `F(2, 12) = 1343`.
pub fn f(f: f64, d1: f64, d2: f64) -> String {
    let v = if f.is_infinite() { "∞ (no residual variation)".to_string() } else { sig(f, 3) };
    format!("F({}, {}) = {v}", sig(d1, 3), sig(d2, 3))
}

/// A share as a percentage: `η² = 99.6 %`.
pub fn share(x: f64) -> String {
    format!("{} %", sig(x * 100.0, 3))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(num(76.588), "76.59");
        assert_eq!(num(1343.2), "1343");
        assert_eq!(num(0.0912345), "0.09123");
        assert_eq!(value(6290.0, "ms"), "6.29 s");
        assert_eq!(value(86.5, "ms"), "86.5 ms");
        assert_eq!(value(76.588, "tok/s"), "76.59 tok/s");
        assert_eq!(pct(17.54), "+17.5 %");
        assert_eq!(pct(-0.01), "0.0 %");
        assert_eq!(p(0.00002), "p < 0.0001");
        assert_eq!(p(0.03124), "p = 0.0312");
        assert_eq!(f(1343.2, 2.0, 12.0), "F(2, 12) = 1343");
    }
}
