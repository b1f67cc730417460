//! Embeds the git commit for `--version` and bench records (degrades to "unknown" without git),
//! and with the `cuda` feature compiles `kernels/*.cu` to PTX with nvcc (CUDA_COMPUTE_CAP,
//! default 90) into OUT_DIR; a CPU build never needs nvcc.

fn main() {
    let hash = std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=CHIMERA_GIT_HASH={hash}");
    for p in [".git/HEAD", ".git/refs/heads"] {
        if std::path::Path::new(p).exists() {
            println!("cargo:rerun-if-changed={p}");
        }
    }
    if std::env::var_os("CARGO_FEATURE_CUDA").is_some() {
        ptx();
    }
}

/// kernels/NAME.cu → OUT_DIR/NAME.ptx.
fn ptx() {
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let cap = std::env::var("CUDA_COMPUTE_CAP").unwrap_or_else(|_| "90".into());
    let nvcc = std::env::var("NVCC").unwrap_or_else(|_| "nvcc".into());
    println!("cargo:rerun-if-env-changed=CUDA_COMPUTE_CAP");
    println!("cargo:rerun-if-changed=kernels/common.cuh");
    for name in ["norm", "mlp", "attention", "sample"] {
        let src = format!("kernels/{name}.cu");
        println!("cargo:rerun-if-changed={src}");
        let status = std::process::Command::new(&nvcc)
            .args(["--ptx", &format!("-arch=sm_{cap}"), "-O3", "-o"])
            .arg(out.join(format!("{name}.ptx")))
            .arg(&src)
            .status()
            .unwrap_or_else(|e| {
                panic!("running {nvcc} for {src} (the cuda feature needs nvcc): {e}")
            });
        assert!(status.success(), "{nvcc} failed on {src}");
    }
}
