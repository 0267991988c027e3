//! Compiles every `cuda/*.cu` to PTX with nvcc and checks it with ptxas for the target GPU.
//! CUDA_COMPUTE_CAP picks the target: 90 -> sm_90a (Hopper only), 80 -> compute_80 (portable).

use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    if std::env::var_os("CARGO_FEATURE_CUDA").is_none() {
        return;
    }
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    let cap = std::env::var("CUDA_COMPUTE_CAP").unwrap_or_else(|_| "90".into());
    println!("cargo:rerun-if-env-changed=CUDA_COMPUTE_CAP");
    println!("cargo:rerun-if-changed=cuda");
    let (virtual_arch, real_arch) = match cap.as_str() {
        "90" => ("compute_90a".to_string(), "sm_90a".to_string()),
        other => (format!("compute_{other}"), format!("sm_{other}")),
    };
    let nvcc = std::env::var("NVCC").unwrap_or_else(|_| "nvcc".into());
    let mut report = String::new();
    let mut sources: Vec<_> = std::fs::read_dir("cuda").unwrap().map(|e| e.unwrap().path()).collect();
    sources.sort();
    for src in sources.iter().filter(|p| p.extension().is_some_and(|e| e == "cu")) {
        let stem = src.file_stem().unwrap().to_str().unwrap();
        let ptx = out.join(format!("{stem}.ptx"));
        let status = Command::new(&nvcc)
            .args(["--ptx", "-O3", "-std=c++17", "--use_fast_math", "-lineinfo", "-Icuda"])
            .arg(format!("-arch={virtual_arch}"))
            .arg(src)
            .arg("-o")
            .arg(&ptx)
            .status()
            .unwrap_or_else(|e| panic!("cannot run {nvcc} (is the CUDA toolchain on PATH? see scripts/cuda-toolchain.sh): {e}"));
        assert!(status.success(), "nvcc failed on {}", src.display());
        // ptxas proves the PTX assembles for the real GPU and reports registers/spills.
        let check = Command::new("ptxas")
            .args(["-v", "-O3"])
            .arg(format!("-arch={real_arch}"))
            .arg(&ptx)
            .arg("-o")
            .arg(out.join(format!("{stem}.cubin")))
            .output()
            .expect("run ptxas");
        assert!(check.status.success(), "ptxas failed on {stem}: {}", String::from_utf8_lossy(&check.stderr));
        report.push_str(&format!("== {stem} ({real_arch})\n{}", String::from_utf8_lossy(&check.stderr)));
    }
    std::fs::write(out.join("ptxas-report.txt"), report).unwrap();
}
