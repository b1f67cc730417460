//! EmbeddingGemma's projections after mean pooling: `dense_2` (n_embd → 3072) then `dense_3`
//! (3072 → n_embd), linear, without bias or activation between them (ref: llama-graph.cpp
//! build_dense_out; llama-model.cpp LLM_ARCH_GEMMA_EMBEDDING loads no dense bias).

use crate::backend::cpu::quant;
use crate::error::{Error, Result};
use crate::gguf::Gguf;

/// One projection, dequantized at load (2.4 M weights each for EmbeddingGemma-300m).
#[derive(Debug)]
pub struct Dense {
    n_in: usize,
    /// `n_out` rows of `n_in` weights.
    w: Vec<f32>,
}

impl Dense {
    /// `w · x`.
    pub fn apply(&self, x: &[f32]) -> Vec<f32> {
        self.w
            .chunks_exact(self.n_in)
            .map(|row| {
                row.iter().zip(x).map(|(a, b)| f64::from(*a) * f64::from(*b)).sum::<f64>() as f32
            })
            .collect()
    }
}

/// The projections the file has, in the order they apply; each must take the width the one
/// before gives (the first: `n_embd`) and the last must give `n_embd` back.
pub fn load(g: &Gguf, n_embd: usize) -> Result<Vec<Dense>> {
    let mut out: Vec<Dense> = vec![];
    let mut width = n_embd;
    for name in ["dense_2.weight", "dense_3.weight"] {
        let Some(t) = g.tensor(name) else { continue };
        let bad = |what: String| Error::Tensor { path: g.path.clone(), name: name.into(), what };
        let [n_in, n_out] = t.dims[..] else {
            return Err(bad(format!("shape {:?}, expected two dimensions", t.dims)));
        };
        let (n_in, n_out) = (n_in as usize, n_out as usize);
        if n_in != width {
            return Err(bad(format!("takes {n_in} values, the layer before gives {width}")));
        }
        let (be, bb) = t.ty.block();
        if n_in % be != 0 || t.bytes as usize != n_out * n_in / be * bb {
            return Err(bad(format!(
                "{} bytes do not hold [{n_in}, {n_out}] of {:?}",
                t.bytes, t.ty
            )));
        }
        let row = n_in / be * bb;
        let bytes = &g.bytes()[t.offset as usize..t.offset as usize + n_out * row];
        let mut w = vec![0f32; n_in * n_out];
        for (r, dst) in w.chunks_exact_mut(n_in).enumerate() {
            quant::dequantize(t.ty, &bytes[r * row..(r + 1) * row], dst);
        }
        out.push(Dense { n_in, w });
        width = n_out;
    }
    if width != n_embd {
        return Err(Error::Tensor {
            path: g.path.clone(),
            name: "dense_3.weight".into(),
            what: format!("gives {width} values, expected n_embd {n_embd}"),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn applies_rows() {
        let d = Dense { n_in: 2, w: vec![1.0, 0.0, 0.0, 1.0, 1.0, 1.0] };
        assert_eq!(d.apply(&[2.0, 3.0]), vec![2.0, 3.0, 5.0]);
    }
}
