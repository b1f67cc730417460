//! The gemma3 block, written once against [`Backend`] (ref: llama.cpp src/models/gemma3.cpp):
//! a "sandwich" of RMSNorms around attention and the MLP, grouped-query attention with QK-norm
//! and NEOX rope, a GELU-tanh gated MLP, each sub-block's output post-normed into the residual.

use crate::backend::{Backend, Batch, Buf, Mat, Norm};
use crate::error::Result;

/// Runs block `l` over the batch, reading and writing the backend's residual stream `X`.
pub fn forward(b: &mut dyn Backend, l: usize, batch: &Batch) -> Result<()> {
    let n = batch.len();
    // attention: x += post_attn_norm(attn(attn_norm(x)))
    b.norm(Norm::Attn(l), Buf::X, Buf::Xn, n)?;
    b.matmul(l, Buf::Xn, &[(Mat::Q, Buf::Q), (Mat::K, Buf::K), (Mat::V, Buf::V)], n)?;
    b.qk_norm_rope_store(l, batch)?;
    b.attention(l, batch)?;
    b.matmul(l, Buf::Att, &[(Mat::O, Buf::O)], n)?;
    b.add_norm(Norm::PostAttn(l), Buf::O, Buf::X, n)?;
    // MLP: x += post_ffw_norm(down(gelu(gate(ffn_norm(x))) * up(ffn_norm(x))))
    b.norm(Norm::Ffn(l), Buf::X, Buf::Xn, n)?;
    b.matmul(l, Buf::Xn, &[(Mat::Gate, Buf::Gate), (Mat::Up, Buf::Up)], n)?;
    b.gelu_mul(n)?;
    b.matmul(l, Buf::Gate, &[(Mat::Down, Buf::O)], n)?;
    b.add_norm(Norm::PostFfw(l), Buf::O, Buf::X, n)
}
