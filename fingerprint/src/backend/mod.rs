//! Backends compute the responses of one side of a matrix ([`SideJob`]); all produce the same
//! integers. Everything else (scales, anchors, signatures, hashes) is shared CPU code.

pub mod cpu;
#[cfg(feature = "gpu")]
pub mod gpu;
mod simd;

use std::fmt;
use std::str::FromStr;

use crate::sketch::SideJob;
use crate::Result;

/// Which backend computes the responses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BackendKind {
    /// Plain Rust on all cores.
    #[default]
    Cpu,
    /// cubecl kernels on wgpu (Vulkan, Metal, DX12; lavapipe on a CPU).
    Wgpu,
    /// cubecl kernels on CUDA.
    Cuda,
}

impl BackendKind {
    pub fn as_str(self) -> &'static str {
        match self {
            BackendKind::Cpu => "cpu",
            BackendKind::Wgpu => "wgpu",
            BackendKind::Cuda => "cuda",
        }
    }
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for BackendKind {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "cpu" => Ok(BackendKind::Cpu),
            "wgpu" => Ok(BackendKind::Wgpu),
            "cuda" => Ok(BackendKind::Cuda),
            other => Err(format!(
                "unknown backend {other:?} (expected cpu, wgpu or cuda)"
            )),
        }
    }
}

/// Something that computes responses.
pub trait Backend {
    fn kind(&self) -> BackendKind;
    /// `units × 64` responses, equal to [`crate::sketch::responses_reference`].
    fn side_responses(&self, job: &SideJob<'_>) -> Result<Vec<i32>>;
}

/// The CPU backend.
#[derive(Debug, Clone, Copy, Default)]
pub struct CpuBackend;

impl Backend for CpuBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::Cpu
    }

    fn side_responses(&self, job: &SideJob<'_>) -> Result<Vec<i32>> {
        Ok(cpu::side_responses(job))
    }
}

/// Creates the backend of `kind`.
pub fn create(kind: BackendKind) -> Result<Box<dyn Backend>> {
    match kind {
        BackendKind::Cpu => Ok(Box::new(CpuBackend)),
        #[cfg(feature = "gpu")]
        BackendKind::Wgpu => Ok(Box::new(gpu::WgpuBackend::wgpu()?)),
        #[cfg(feature = "gpu")]
        BackendKind::Cuda => Ok(Box::new(gpu::CudaBackend::cuda()?)),
        #[cfg(not(feature = "gpu"))]
        BackendKind::Wgpu | BackendKind::Cuda => Err(crate::Error::Gpu {
            backend: kind.as_str(),
            message: "this build has no GPU backends (built without the `gpu` feature)".into(),
        }),
    }
}
