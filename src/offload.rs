//! The layer-offload planner: Ollama's `num_gpu` as a pure function of sizes and free memory.
//!
//! The model has n_blocks + 1 slots, the last being the output head. N ≤ n_blocks puts the last N
//! blocks on the GPU and the head on the CPU; N ≥ n_blocks + 1 puts every block and the head on the
//! GPU; the token embedding always stays on the CPU; −1 fits as many slots as free GPU memory
//! allows after a 1 GiB margin; larger values clamp. This is llama.cpp's reading at the version
//! Ollama vendored (ec98e2002: i_gpu_start = max(n_layer − ngl, 0)), which is what Ollama's gemma3
//! users saw (ref: ../shared/reference/ollama-llamacpp-semantics.md §1.2).

use crate::error::{Error, Result};

/// Where one slot runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Placement {
    Cpu,
    Gpu,
}

/// The margin automatic fitting leaves free (ref: llama.cpp common.h fit_params_target = 1 GiB).
pub const AUTO_MARGIN: u64 = 1 << 30;

/// A placement for every block and the head, with bytes per device.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Plan {
    pub blocks: Vec<Placement>,
    pub head: Placement,
    /// Slots on the GPU (0..=n_blocks+1).
    pub gpu_slots: usize,
    pub gpu_bytes: u64,
    pub cpu_bytes: u64,
}

/// Sizes the planner needs: per block weights + KV, the head, and the CPU-resident embedding.
#[derive(Debug, Clone)]
pub struct Sizes {
    pub block_bytes: Vec<u64>,
    pub head_bytes: u64,
    pub embd_bytes: u64,
}

/// Plans `num_gpu` (−1 = auto with `free_gpu` bytes free; `None` = no GPU present).
pub fn plan(sizes: &Sizes, num_gpu: i64, free_gpu: Option<u64>) -> Result<Plan> {
    let n = sizes.block_bytes.len();
    let slots = match num_gpu {
        -1 => match free_gpu {
            None => 0,
            Some(free) => {
                let budget = free.saturating_sub(AUTO_MARGIN);
                (0..=n + 1).rev().find(|&k| bytes_on_gpu(sizes, k) <= budget).unwrap_or(0)
            }
        },
        k if k < -1 => return Err(Error::option("num_gpu", k, "must be ≥ −1 (−1 = automatic)")),
        k => (k as usize).min(n + 1),
    };
    let first_gpu = n - slots.min(n);
    let blocks = (0..n)
        .map(|i| if i >= first_gpu && slots > 0 { Placement::Gpu } else { Placement::Cpu })
        .collect();
    let head = if slots == n + 1 { Placement::Gpu } else { Placement::Cpu };
    let gpu_bytes = bytes_on_gpu(sizes, slots);
    let total: u64 = sizes.block_bytes.iter().sum::<u64>() + sizes.head_bytes + sizes.embd_bytes;
    Ok(Plan { blocks, head, gpu_slots: slots, gpu_bytes, cpu_bytes: total - gpu_bytes })
}

impl Plan {
    /// Bytes per device: the CPU (the embedding, its blocks and perhaps the head) and, when any
    /// slot is on it, the GPU named `gpu` (`cpu` when there is no GPU backend: one entry).
    pub fn bytes_by_device(&self, gpu: &str) -> Vec<(String, u64)> {
        if self.gpu_slots == 0 || gpu == "cpu" {
            return vec![("cpu".into(), self.cpu_bytes + self.gpu_bytes)];
        }
        vec![("cpu".into(), self.cpu_bytes), (gpu.into(), self.gpu_bytes)]
    }

    /// Every block and the head on the GPU (a safetensors folder, which runs on candle alone).
    pub fn all_gpu(n_blocks: usize) -> Plan {
        Plan {
            blocks: vec![Placement::Gpu; n_blocks],
            head: Placement::Gpu,
            gpu_slots: n_blocks + 1,
            gpu_bytes: 0,
            cpu_bytes: 0,
        }
    }
}

fn bytes_on_gpu(s: &Sizes, slots: usize) -> u64 {
    let n = s.block_bytes.len();
    let blocks: u64 = s.block_bytes[n - slots.min(n)..].iter().sum();
    blocks + if slots == n + 1 { s.head_bytes } else { 0 }
}

impl std::fmt::Display for Plan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let gpu = self.blocks.iter().filter(|p| **p == Placement::Gpu).count();
        write!(
            f,
            "{}/{} slots on GPU ({} of {} blocks, head on {}); GPU {:.1} MiB, CPU {:.1} MiB",
            self.gpu_slots,
            self.blocks.len() + 1,
            gpu,
            self.blocks.len(),
            if self.head == Placement::Gpu { "GPU" } else { "CPU" },
            self.gpu_bytes as f64 / 1048576.0,
            self.cpu_bytes as f64 / 1048576.0
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Placement::*;

    fn sizes() -> Sizes {
        Sizes { block_bytes: vec![10; 4], head_bytes: 100, embd_bytes: 7 }
    }

    #[test]
    fn num_gpu_table() {
        // (num_gpu, free, blocks on GPU from the end, head)
        let table: &[(i64, Option<u64>, usize, Placement)] = &[
            (0, None, 0, Cpu),
            (1, None, 1, Cpu),
            (3, None, 3, Cpu),
            (4, None, 4, Cpu),
            (5, None, 4, Gpu),
            (999, None, 4, Gpu),
            (-1, None, 0, Cpu),
            (-1, Some(AUTO_MARGIN + 25), 2, Cpu),
            (-1, Some(AUTO_MARGIN + 139), 4, Cpu),
            (-1, Some(AUTO_MARGIN + 140), 4, Gpu),
            (-1, Some(5), 0, Cpu),
        ];
        for &(ngl, free, on_gpu, head) in table {
            let p = plan(&sizes(), ngl, free).unwrap();
            let want: Vec<Placement> =
                (0..4).map(|i| if i >= 4 - on_gpu { Gpu } else { Cpu }).collect();
            assert_eq!(p.blocks, want, "num_gpu {ngl} free {free:?}");
            assert_eq!(p.head, head, "num_gpu {ngl} free {free:?}");
            assert_eq!(p.gpu_bytes + p.cpu_bytes, 147);
        }
    }

    #[test]
    fn negative_num_gpu_other_than_auto_is_an_error() {
        assert!(plan(&sizes(), -2, None).unwrap_err().to_string().contains("num_gpu"));
    }
}
