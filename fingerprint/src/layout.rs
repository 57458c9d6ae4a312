//! How a tensor is viewed as a matrix, whatever the framework that stored it.
//!
//! - 2-D tensors are `shape[0] × shape[1]`; a transposed copy (Keras `Dense` kernels are stored
//!   `in × out`, PyTorch `Linear` weights `out × in`) is the same matrix with its sides swapped,
//!   and since both sides of every matrix are sketched as unit sets, nothing depends on which.
//! - Tensors of 3 or more dimensions with a residual-width axis first or last (attention
//!   kernels stored `d × heads × head_dim`, say) are `d × rest` or `rest × d`.
//! - Other tensors of 3 or more dimensions are convolution kernels: PyTorch stores them `out ×
//!   in × spatial…` (OIHW), TensorFlow, Keras and tfjs `spatial… × in × out` (HWIO). The spatial
//!   axes are the ones of at most [`MAX_KERNEL`] elements, trailing in the first layout and
//!   leading in the second (when both are small, the square pair decides, PyTorch first); a
//!   channels-last kernel is transposed to `out × (in · spatial…)` in PyTorch order, so both
//!   layouts give the same matrix.

/// Largest spatial extent of a convolution kernel recognised as such.
pub const MAX_KERNEL: u64 = 11;

/// A tensor's canonical matrix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Canonical {
    pub rows: u64,
    pub cols: u64,
    /// For a channels-last kernel, the order of the stored axes that gives the canonical
    /// row-major layout (`None`: the stored bytes are already row-major `rows × cols`).
    pub axes: Option<Vec<usize>>,
    /// Whether this is a convolution kernel (its columns mix input channels and positions).
    pub conv: bool,
}

/// The canonical matrix of a tensor of shape `shape` in a model whose residual width is
/// `width`; `None` for scalars and 1-D tensors.
pub fn canonical(shape: &[u64], width: Option<u64>) -> Option<Canonical> {
    let product = |dims: &[u64]| dims.iter().try_fold(1u64, |a, &d| a.checked_mul(d));
    let plain = |rows: u64, cols: u64, conv| Canonical {
        rows,
        cols,
        axes: None,
        conv,
    };
    match shape.len() {
        0 | 1 => None,
        2 => Some(plain(shape[0], shape[1], false)),
        n => {
            let (first, last) = (shape[0], shape[n - 1]);
            if width == Some(first) {
                return Some(plain(first, product(&shape[1..])?, false));
            }
            if width == Some(last) {
                return Some(plain(product(&shape[..n - 1])?, last, false));
            }
            let spatial = n - 2;
            let small = |dims: &[u64]| dims.iter().all(|&d| d <= MAX_KERNEL);
            let square = |dims: &[u64]| dims.windows(2).all(|w| w[0] == w[1]);
            let (pt, tf) = (small(&shape[2..]), small(&shape[..spatial]));
            let channels_last = match (pt, tf) {
                (true, false) | (false, false) => false,
                (false, true) => true,
                (true, true) => !square(&shape[2..]) && square(&shape[..spatial]),
            };
            if channels_last {
                // stored (s1…sk, in, out): canonical (out, in, s1…sk)
                let mut axes = vec![n - 1, n - 2];
                axes.extend(0..spatial);
                Some(Canonical {
                    rows: last,
                    cols: product(&shape[..n - 1])?,
                    axes: Some(axes),
                    conv: true,
                })
            } else {
                Some(plain(first, product(&shape[1..])?, pt))
            }
        }
    }
}

/// The bytes of a tensor (row-major over `shape`, elements of `size` bytes) with its axes put
/// in the order `axes` (output axis `k` is input axis `axes[k]`).
pub fn transpose(bytes: &[u8], shape: &[u64], axes: &[usize], size: usize) -> Vec<u8> {
    let n = shape.len();
    let mut strides = vec![1usize; n];
    for k in (0..n.saturating_sub(1)).rev() {
        strides[k] = strides[k + 1] * shape[k + 1] as usize;
    }
    let out_shape: Vec<usize> = axes.iter().map(|&a| shape[a] as usize).collect();
    let out_strides: Vec<usize> = axes.iter().map(|&a| strides[a]).collect();
    let count: usize = out_shape.iter().product();
    let mut out = Vec::with_capacity(count * size);
    let mut index = vec![0usize; n];
    let mut offset = 0usize;
    for _ in 0..count {
        out.extend_from_slice(&bytes[offset * size..(offset + 1) * size]);
        // odometer over the output axes, last fastest
        for k in (0..n).rev() {
            index[k] += 1;
            offset += out_strides[k];
            if index[k] < out_shape[k] {
                break;
            }
            offset -= out_strides[k] * index[k];
            index[k] = 0;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channels_first_and_last_kernels_give_the_same_matrix() {
        // OIHW (out 16, in 12, 3×2) and the same kernel stored HWIO.
        let (o, i, h, w) = (16usize, 12usize, 3usize, 2usize);
        let oihw: Vec<u16> = (0..(o * i * h * w) as u16).collect();
        let mut hwio = vec![0u16; oihw.len()];
        for a in 0..o {
            for b in 0..i {
                for c in 0..h {
                    for d in 0..w {
                        hwio[((c * w + d) * i + b) * o + a] = oihw[((a * i + b) * h + c) * w + d];
                    }
                }
            }
        }
        let bytes = |v: &[u16]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
        let (oihw, hwio) = (bytes(&oihw), bytes(&hwio));
        let pt = canonical(&[16, 12, 3, 2], None).unwrap();
        assert_eq!(
            (pt.rows, pt.cols, pt.axes.clone(), pt.conv),
            (16, 72, None, true)
        );
        let tf = canonical(&[3, 2, 12, 16], None).unwrap();
        assert_eq!((tf.rows, tf.cols, tf.conv), (16, 72, true));
        assert_eq!(
            transpose(&hwio, &[3, 2, 12, 16], &tf.axes.unwrap(), 2),
            oihw
        );
    }

    #[test]
    fn residual_axes_and_plain_matrices() {
        assert_eq!(canonical(&[384, 12, 32], Some(384)).unwrap().cols, 384);
        assert_eq!(canonical(&[12, 32, 384], Some(384)).unwrap().rows, 384);
        let first_conv = canonical(&[64, 3, 7, 7], None).unwrap();
        assert_eq!((first_conv.rows, first_conv.cols), (64, 147));
        let tf_first_conv = canonical(&[7, 7, 3, 64], None).unwrap();
        assert_eq!((tf_first_conv.rows, tf_first_conv.cols), (64, 147));
        assert_eq!(canonical(&[10], None), None);
        let transposed = transpose(&[1, 2, 3, 4, 5, 6], &[2, 3], &[1, 0], 1);
        assert_eq!(transposed, vec![1, 4, 2, 5, 3, 6]);
    }
}
