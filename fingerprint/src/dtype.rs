//! Element types and their exact conversion to the fingerprint's fixed-point integers.
//!
//! Every element is first read as an exact binary value `sign × mag × 2^exp` (an integer
//! mantissa and a power of two), using integer operations only, so that every backend (this CPU
//! reference, the wgpu and CUDA kernels) reads the same value from the same bits.

use crate::{Error, Result};

/// The element types the fingerprint reads. The discriminant is the code in the canonical
/// encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Dtype {
    F32 = 1,
    F16 = 2,
    BF16 = 3,
    I8 = 4,
    U8 = 5,
    F8E4M3 = 6,
    F8E5M2 = 7,
    // Identified by hash only (no behavioural sketch): index tensors, masks, buffers.
    F64 = 8,
    I16 = 9,
    I32 = 10,
    I64 = 11,
    U16 = 12,
    U32 = 13,
    U64 = 14,
    Bool = 15,
    /// OCP MX scale exponents (`2^(e − 127)`), read only as the scales of packed weights.
    F8E8M0 = 16,
}

impl Dtype {
    /// The types that get a behavioural sketch.
    pub const ALL: [Dtype; 7] = [
        Dtype::F32,
        Dtype::F16,
        Dtype::BF16,
        Dtype::I8,
        Dtype::U8,
        Dtype::F8E4M3,
        Dtype::F8E5M2,
    ];
    /// The types that are only hashed.
    pub const HASH_ONLY: [Dtype; 9] = [
        Dtype::F64,
        Dtype::I16,
        Dtype::I32,
        Dtype::I64,
        Dtype::U16,
        Dtype::U32,
        Dtype::U64,
        Dtype::Bool,
        Dtype::F8E8M0,
    ];

    /// Whether tensors of this type get a behavioural sketch.
    pub fn sketchable(self) -> bool {
        (self as u8) <= 7
    }

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            Dtype::F64 | Dtype::I64 | Dtype::U64 => 8,
            Dtype::F32 | Dtype::I32 | Dtype::U32 => 4,
            Dtype::F16 | Dtype::BF16 | Dtype::I16 | Dtype::U16 => 2,
            Dtype::I8 | Dtype::U8 | Dtype::F8E4M3 | Dtype::F8E5M2 | Dtype::F8E8M0 | Dtype::Bool => {
                1
            }
        }
    }

    /// The code in the canonical encoding.
    pub fn code(self) -> u8 {
        self as u8
    }

    pub fn from_code(code: u8) -> Option<Self> {
        Self::ALL
            .into_iter()
            .chain(Self::HASH_ONLY)
            .find(|d| d.code() == code)
    }

    /// The safetensors name.
    pub fn name(self) -> &'static str {
        match self {
            Dtype::F32 => "F32",
            Dtype::F16 => "F16",
            Dtype::BF16 => "BF16",
            Dtype::I8 => "I8",
            Dtype::U8 => "U8",
            Dtype::F8E4M3 => "F8_E4M3",
            Dtype::F8E5M2 => "F8_E5M2",
            Dtype::F64 => "F64",
            Dtype::I16 => "I16",
            Dtype::I32 => "I32",
            Dtype::I64 => "I64",
            Dtype::U16 => "U16",
            Dtype::U32 => "U32",
            Dtype::U64 => "U64",
            Dtype::Bool => "BOOL",
            Dtype::F8E8M0 => "F8_E8M0",
        }
    }

    pub(crate) fn from_safetensors(
        dtype: safetensors::Dtype,
        tensor: &str,
        file: &std::path::Path,
    ) -> Result<Self> {
        use safetensors::Dtype as S;
        Ok(match dtype {
            S::F32 => Dtype::F32,
            S::F16 => Dtype::F16,
            S::BF16 => Dtype::BF16,
            S::I8 => Dtype::I8,
            S::U8 => Dtype::U8,
            S::F8_E4M3 => Dtype::F8E4M3,
            S::F8_E5M2 => Dtype::F8E5M2,
            S::F64 => Dtype::F64,
            S::I16 => Dtype::I16,
            S::I32 => Dtype::I32,
            S::I64 => Dtype::I64,
            S::U16 => Dtype::U16,
            S::U32 => Dtype::U32,
            S::U64 => Dtype::U64,
            S::BOOL => Dtype::Bool,
            S::F8_E8M0 => Dtype::F8E8M0,
            other => {
                return Err(Error::UnsupportedDtype {
                    file: file.to_path_buf(),
                    tensor: tensor.to_string(),
                    dtype: format!("{other:?}"),
                })
            }
        })
    }

    /// (exponent bits, mantissa bits, bias) of the float types; `None` for integers.
    pub(crate) fn float_layout(self) -> Option<(u32, u32, i32)> {
        match self {
            Dtype::F32 => Some((8, 23, 127)),
            Dtype::F16 => Some((5, 10, 15)),
            Dtype::BF16 => Some((8, 7, 127)),
            Dtype::F8E4M3 => Some((4, 3, 7)),
            Dtype::F8E5M2 => Some((5, 2, 15)),
            _ => None,
        }
    }

    /// The element at `index` of little-endian `bytes`, as its raw bits.
    #[inline]
    pub fn bits_at(self, bytes: &[u8], index: usize) -> u32 {
        match self.size() {
            4 => u32::from_le_bytes(bytes[index * 4..index * 4 + 4].try_into().expect("4 bytes")),
            2 => u32::from(u16::from_le_bytes([bytes[index * 2], bytes[index * 2 + 1]])),
            _ => u32::from(bytes[index]),
        }
    }
}

/// An element read exactly: `value = (-1)^negative × mag × 2^exp`. `mag == 0` is zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Value {
    Finite {
        negative: bool,
        mag: u32,
        exp: i32,
    },
    /// NaN: counts as zero.
    NaN,
    /// ±infinity: saturates to the largest fixed-point magnitude.
    Inf {
        negative: bool,
    },
}

/// Reads the raw bits of one element of a [sketchable](Dtype::sketchable) type.
#[inline]
pub fn decode(dtype: Dtype, bits: u32) -> Value {
    match dtype.float_layout() {
        None => {
            let v = if dtype == Dtype::I8 {
                i32::from(bits as u8 as i8)
            } else {
                bits as i32
            };
            Value::Finite {
                negative: v < 0,
                mag: v.unsigned_abs(),
                exp: 0,
            }
        }
        Some((ebits, mbits, bias)) => {
            let total = 1 + ebits + mbits;
            let negative = (bits >> (total - 1)) & 1 == 1;
            let e = (bits >> mbits) & ((1 << ebits) - 1);
            let m = bits & ((1 << mbits) - 1);
            let e_max = (1 << ebits) - 1;
            if dtype == Dtype::F8E4M3 {
                // E4M3 (OCP "fn" variant) has no infinities; only S.1111.111 is NaN.
                if e == e_max && m == (1 << mbits) - 1 {
                    return Value::NaN;
                }
            } else if e == e_max {
                return if m == 0 {
                    Value::Inf { negative }
                } else {
                    Value::NaN
                };
            }
            if e == 0 {
                // Zero or subnormal: no implicit bit.
                Value::Finite {
                    negative,
                    mag: m,
                    exp: 1 - bias - mbits as i32,
                }
            } else {
                Value::Finite {
                    negative,
                    mag: m | (1 << mbits),
                    exp: e as i32 - bias - mbits as i32,
                }
            }
        }
    }
}

/// `floor(log2 |value|)` of a finite non-zero value, else `None`.
#[inline]
pub fn top_exponent(value: Value) -> Option<i32> {
    match value {
        Value::Finite { mag, exp, .. } if mag != 0 => Some(exp + 31 - mag.leading_zeros() as i32),
        _ => None,
    }
}

/// The fixed-point integer of `value` at scale `top` with `bits` magnitude bits:
/// `round(value × 2^(bits - 1 - top))`, rounding half away from zero, saturated so that
/// `|q| <= 2^bits`: a value whose top exponent is above `top` (at least `2^(top+1)`) and
/// ±infinity give ±2^bits. NaN is 0. (The scale comes from a quantile of the unit's exponents,
/// [`crate::scale`], so an outlier saturates instead of deciding everyone else's resolution.)
#[inline]
pub fn fixed_point(value: Value, top: i32, bits: u32) -> i32 {
    let saturated = |negative: bool| {
        let q = 1i32 << bits;
        if negative {
            -q
        } else {
            q
        }
    };
    match value {
        Value::NaN => 0,
        Value::Inf { negative } => saturated(negative),
        Value::Finite { negative, .. } if top_exponent(value).is_some_and(|e| e > top) => {
            saturated(negative)
        }
        Value::Finite { negative, mag, exp } => {
            let shift = exp - top + bits as i32 - 1;
            let q = if shift >= 0 {
                // The value's top exponent is <= top here, so this stays below 2^bits.
                mag << shift
            } else {
                let k = (-shift) as u32;
                if k > 31 {
                    0
                } else {
                    // mag < 2^24 and k <= 31: the sum fits in u32 (checked by the tests).
                    (mag + (1 << (k - 1))) >> k
                }
            } as i32;
            if negative {
                -q
            } else {
                q
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exact(v: Value) -> f64 {
        match v {
            Value::Finite { negative, mag, exp } => {
                let x = f64::from(mag) * 2f64.powi(exp);
                if negative {
                    -x
                } else {
                    x
                }
            }
            Value::NaN => f64::NAN,
            Value::Inf { negative } => {
                if negative {
                    f64::NEG_INFINITY
                } else {
                    f64::INFINITY
                }
            }
        }
    }

    #[test]
    fn decodes_every_f16_and_bf16_exactly() {
        for bits in 0..=u16::MAX {
            let f16 = f64::from(half::f16::from_bits(bits).to_f32());
            let v = exact(decode(Dtype::F16, u32::from(bits)));
            assert!(
                v == f16 || (v.is_nan() && f16.is_nan()),
                "f16 {bits:#06x}: {v} != {f16}"
            );
            let bf16 = f64::from(half::bf16::from_bits(bits).to_f32());
            let v = exact(decode(Dtype::BF16, u32::from(bits)));
            assert!(
                v == bf16 || (v.is_nan() && bf16.is_nan()),
                "bf16 {bits:#06x}: {v} != {bf16}"
            );
        }
    }

    #[test]
    fn decodes_f32_samples_and_f8_tables() {
        for x in [
            0.0f32,
            -0.0,
            1.0,
            -1.5,
            3.25e-41,
            f32::MIN_POSITIVE,
            f32::MAX,
            -7.0e-3,
            123456.78,
        ] {
            assert_eq!(exact(decode(Dtype::F32, x.to_bits())), f64::from(x), "{x}");
        }
        // E4M3: max 448, min subnormal 2^-9, 0x7f NaN; E5M2: max 57344, 0x7c inf.
        assert_eq!(exact(decode(Dtype::F8E4M3, 0x7e)), 448.0);
        assert_eq!(exact(decode(Dtype::F8E4M3, 0x01)), 2f64.powi(-9));
        assert_eq!(decode(Dtype::F8E4M3, 0x7f), Value::NaN);
        assert_eq!(exact(decode(Dtype::F8E4M3, 0xb8)), -1.0);
        assert_eq!(exact(decode(Dtype::F8E5M2, 0x7b)), 57344.0);
        assert_eq!(decode(Dtype::F8E5M2, 0x7c), Value::Inf { negative: false });
        assert_eq!(decode(Dtype::F8E5M2, 0x7d), Value::NaN);
        assert_eq!(exact(decode(Dtype::I8, 0x80)), -128.0);
        assert_eq!(exact(decode(Dtype::U8, 0xff)), 255.0);
    }

    #[test]
    fn fixed_point_rounds_and_stays_in_range() {
        let v = |x: f32| decode(Dtype::F32, x.to_bits());
        let top = top_exponent(v(1.0)).unwrap();
        assert_eq!(top, 0);
        assert_eq!(fixed_point(v(1.0), top, 11), 1024);
        assert_eq!(fixed_point(v(1.999), top, 11), 2047);
        assert_eq!(fixed_point(v(-0.5), top, 11), -512);
        // 0.25/1024 is half a unit: rounds away from zero.
        assert_eq!(fixed_point(v(0.5 / 1024.0), top, 11), 1);
        assert_eq!(fixed_point(v(-0.5 / 1024.0), top, 11), -1);
        assert_eq!(fixed_point(v(0.49 / 1024.0), top, 11), 0);
        assert_eq!(fixed_point(v(1e-30), top, 11), 0);
        assert_eq!(fixed_point(Value::NaN, top, 11), 0);
        assert_eq!(fixed_point(Value::Inf { negative: true }, top, 11), -2048);
        // Every f32 below 2^(top+1) maps inside ±2^bits, without overflow in the rounding.
        for bits in [
            0x3fff_ffffu32,
            0x3f80_0000,
            0x0000_0001,
            0x007f_ffff,
            0x3eff_ffff,
        ] {
            let q = fixed_point(decode(Dtype::F32, bits), 0, 11);
            assert!(q.unsigned_abs() <= 2048, "{bits:#x} -> {q}");
        }
    }
}
