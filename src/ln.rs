//! `ln` of many `f64` at once, with the bits of `f64::ln`.
//!
//! `logsumexp` and `cross_entropy` of short rows take one `ln` per row, of the row's exp-sum,
//! and over millions of rows of 2 or 3 elements a call of libm's `log` per row is a large share
//! of their time. glibc's `log` (since 2.28, from Arm's optimized-routines) is a table lookup
//! and a short polynomial, with no branch on the value but the one between its path for
//! arguments near 1 and the other, so it vectorises. [`glibc_log`] repeats it operation by
//! operation as glibc's x86-64 build for CPUs with FMA and AVX2 runs it (`__ieee754_log_fma`,
//! the variant glibc picks on those CPUs): the same table and constants, the same fused
//! multiply-adds, read off its machine code (glibc 2.36).
//!
//! [`ln_in_place`] takes that way, over chunks of entries 4 or 8 at a time, at the AVX2 and
//! AVX-512 levels, when a probe at first use finds it giving the bits of this process's
//! `f64::ln`. The probe holds arguments whose glibc result is not the correctly rounded one
//! (where a correctly rounded libm, or glibc before 2.28, differs) and a spread over both paths
//! and every table interval (where a build without fused multiply-adds, such as musl's,
//! differs). Elsewhere, and for every argument outside the positive normal range, each entry
//! goes through `f64::ln`: the results are its bits whichever way is taken.

// The replica is compiled everywhere (its probe is tested everywhere) but taken only on
// x86-64, whose glibc build it repeats.
#![cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]

#[cfg(target_arch = "x86_64")]
use std::sync::atomic::{AtomicU8, Ordering};

#[cfg(target_arch = "x86_64")]
use crate::simd::{simd_level, SimdLevel};

/// Entries per call of a vector chunk function.
const CHUNK: usize = 256;

/// glibc's `__log_data`: ln 2 split in two, the polynomial of the main path (`A`) and of the
/// path near 1 (`B`), and per interval of the mantissa `1 / c` and `ln c` (`TABLE`).
const LN2_HI: u64 = 0x3fe62e42fefa3800;
const LN2_LO: u64 = 0x3d2ef35793c76730;
const A: [u64; 5] = [
    0xbfe0000000000001,
    0x3fd555555551305b,
    0xbfcfffffffeb4590,
    0x3fc999b324f10111,
    0xbfc55575e506c89f,
];
const B: [u64; 11] = [
    0xbfe0000000000000,
    0x3fd5555555555577,
    0xbfcffffffffffdcb,
    0x3fc999999995dd0c,
    0xbfc55555556745a7,
    0x3fc24924a344de30,
    0xbfbfffffa4423d65,
    0x3fbc7184282ad6ca,
    0xbfb999eb43b068ff,
    0x3fb78182f7afd085,
    0xbfb5521375d145cd,
];
const TABLE: [[u64; 2]; 128] = [
    [0x3ff734f0c3e0de9f, 0xbfd7cc7f79e69000],
    [0x3ff713786a2ce91f, 0xbfd76feec20d0000],
    [0x3ff6f26008fab5a0, 0xbfd713e31351e000],
    [0x3ff6d1a61f138c7d, 0xbfd6b85b38287800],
    [0x3ff6b1490bc5b4d1, 0xbfd65d5590807800],
    [0x3ff69147332f0cba, 0xbfd602d076180000],
    [0x3ff6719f18224223, 0xbfd5a8ca86909000],
    [0x3ff6524f99a51ed9, 0xbfd54f4356035000],
    [0x3ff63356aa8f24c4, 0xbfd4f637c36b4000],
    [0x3ff614b36b9ddc14, 0xbfd49da7fda85000],
    [0x3ff5f66452c65c4c, 0xbfd445923989a800],
    [0x3ff5d867b5912c4f, 0xbfd3edf439b0b800],
    [0x3ff5babccb5b90de, 0xbfd396ce448f7000],
    [0x3ff59d61f2d91a78, 0xbfd3401e17bda000],
    [0x3ff5805612465687, 0xbfd2e9e2ef468000],
    [0x3ff56397cee76bd3, 0xbfd2941b3830e000],
    [0x3ff54725e2a77f93, 0xbfd23ec58cda8800],
    [0x3ff52aff42064583, 0xbfd1e9e129279000],
    [0x3ff50f22dbb2bddf, 0xbfd1956d2b48f800],
    [0x3ff4f38f4734ded7, 0xbfd141679ab9f800],
    [0x3ff4d843cfde2840, 0xbfd0edd094ef9800],
    [0x3ff4bd3ec078a3c8, 0xbfd09aa518db1000],
    [0x3ff4a27fc3e0258a, 0xbfd047e65263b800],
    [0x3ff4880524d48434, 0xbfcfeb224586f000],
    [0x3ff46dce1b192d0b, 0xbfcf474a7517b000],
    [0x3ff453d9d3391854, 0xbfcea4443d103000],
    [0x3ff43a2744b4845a, 0xbfce020d44e9b000],
    [0x3ff420b54115f8fb, 0xbfcd60a22977f000],
    [0x3ff40782da3ef4b1, 0xbfccc00104959000],
    [0x3ff3ee8f5d57fe8f, 0xbfcc202956891000],
    [0x3ff3d5d9a00b4ce9, 0xbfcb81178d811000],
    [0x3ff3bd60c010c12b, 0xbfcae2c9ccd3d000],
    [0x3ff3a5242b75dab8, 0xbfca45402e129000],
    [0x3ff38d22cd9fd002, 0xbfc9a877681df000],
    [0x3ff3755bc5847a1c, 0xbfc90c6d69483000],
    [0x3ff35dce49ad36e2, 0xbfc87120a645c000],
    [0x3ff34679984dd440, 0xbfc7d68fb4143000],
    [0x3ff32f5cceffcb24, 0xbfc73cb83c627000],
    [0x3ff3187775a10d49, 0xbfc6a39a9b376000],
    [0x3ff301c8373e3990, 0xbfc60b3154b7a000],
    [0x3ff2eb4ebb95f841, 0xbfc5737d76243000],
    [0x3ff2d50a0219a9d1, 0xbfc4dc7b8fc23000],
    [0x3ff2bef9a8b7fd2a, 0xbfc4462c51d20000],
    [0x3ff2a91c7a0c1bab, 0xbfc3b08abc830000],
    [0x3ff293726014b530, 0xbfc31b996b490000],
    [0x3ff27dfa5757a1f5, 0xbfc2875490a44000],
    [0x3ff268b39b1d3bbf, 0xbfc1f3b9f879a000],
    [0x3ff2539d838ff5bd, 0xbfc160c8252ca000],
    [0x3ff23eb7aac9083b, 0xbfc0ce7f57f72000],
    [0x3ff22a012ba940b6, 0xbfc03cdc49fea000],
    [0x3ff2157996cc4132, 0xbfbf57bdbc4b8000],
    [0x3ff201201dd2fc9b, 0xbfbe370896404000],
    [0x3ff1ecf4494d480b, 0xbfbd17983ef94000],
    [0x3ff1d8f5528f6569, 0xbfbbf9674ed8a000],
    [0x3ff1c52311577e7c, 0xbfbadc79202f6000],
    [0x3ff1b17c74cb26e9, 0xbfb9c0c3e7288000],
    [0x3ff19e010c2c1ab6, 0xbfb8a646b372c000],
    [0x3ff18ab07bb670bd, 0xbfb78d01b3ac0000],
    [0x3ff1778a25efbcb6, 0xbfb674f145380000],
    [0x3ff1648d354c31da, 0xbfb55e0e6d878000],
    [0x3ff151b990275fdd, 0xbfb4485cdea1e000],
    [0x3ff13f0ea432d24c, 0xbfb333d94d6aa000],
    [0x3ff12c8b7210f9da, 0xbfb22079f8c56000],
    [0x3ff11a3028ecb531, 0xbfb10e4698622000],
    [0x3ff107fbda8434af, 0xbfaffa6c6ad20000],
    [0x3ff0f5ee0f4e6bb3, 0xbfadda8d4a774000],
    [0x3ff0e4065d2a9fce, 0xbfabbcece4850000],
    [0x3ff0d244632ca521, 0xbfa9a1894012c000],
    [0x3ff0c0a77ce2981a, 0xbfa788583302c000],
    [0x3ff0af2f83c636d1, 0xbfa5715e67d68000],
    [0x3ff09ddb98a01339, 0xbfa35c8a49658000],
    [0x3ff08cabaf52e7df, 0xbfa149e364154000],
    [0x3ff07b9f2f4e28fb, 0xbf9e72c082eb8000],
    [0x3ff06ab58c358f19, 0xbf9a55f152528000],
    [0x3ff059eea5ecf92c, 0xbf963d62cf818000],
    [0x3ff04949cdd12c90, 0xbf9228fb8caa0000],
    [0x3ff038c6c6f0ada9, 0xbf8c317b20f90000],
    [0x3ff02865137932a9, 0xbf8419355daa0000],
    [0x3ff0182427ea7348, 0xbf781203c2ec0000],
    [0x3ff008040614b195, 0xbf60040979240000],
    [0x3fefe01ff726fa1a, 0x3f6feff384900000],
    [0x3fefa11cc261ea74, 0x3f87dc41353d0000],
    [0x3fef6310b081992e, 0x3f93cea3c4c28000],
    [0x3fef25f63ceeadcd, 0x3f9b9fc114890000],
    [0x3feee9c8039113e7, 0x3fa1b0d8ce110000],
    [0x3feeae8078cbb1ab, 0x3fa58a5bd001c000],
    [0x3fee741aa29d0c9b, 0x3fa95c8340d88000],
    [0x3fee3a91830a99b5, 0x3fad276aef578000],
    [0x3fee01e009609a56, 0x3fb07598e598c000],
    [0x3fedca01e577bb98, 0x3fb253f5e30d2000],
    [0x3fed92f20b7c9103, 0x3fb42edd8b380000],
    [0x3fed5cac66fb5cce, 0x3fb606598757c000],
    [0x3fed272caa5ede9d, 0x3fb7da76356a0000],
    [0x3fecf26e3e6b2ccd, 0x3fb9ab434e1c6000],
    [0x3fecbe6da2a77902, 0x3fbb78c7bb0d6000],
    [0x3fec8b266d37086d, 0x3fbd431332e72000],
    [0x3fec5894bd5d5804, 0x3fbf0a3171de6000],
    [0x3fec26b533bb9f8c, 0x3fc067152b914000],
    [0x3febf583eeece73f, 0x3fc147858292b000],
    [0x3febc4fd75db96c1, 0x3fc2266ecdca3000],
    [0x3feb951e0c864a28, 0x3fc303d7a6c55000],
    [0x3feb65e2c5ef3e2c, 0x3fc3dfc33c331000],
    [0x3feb374867c9888b, 0x3fc4ba366b7a8000],
    [0x3feb094b211d304a, 0x3fc5933928d1f000],
    [0x3feadbe885f2ef7e, 0x3fc66acd2418f000],
    [0x3feaaf1d31603da2, 0x3fc740f8ec669000],
    [0x3fea82e63fd358a7, 0x3fc815c0f51af000],
    [0x3fea5740ef09738b, 0x3fc8e92954f68000],
    [0x3fea2c2a90ab4b27, 0x3fc9bb3602f84000],
    [0x3fea01a01393f2d1, 0x3fca8bed1c2c0000],
    [0x3fe9d79f24db3c1b, 0x3fcb5b515c01d000],
    [0x3fe9ae2505c7b190, 0x3fcc2967ccbcc000],
    [0x3fe9852ef297ce2f, 0x3fccf635d5486000],
    [0x3fe95cbaeea44b75, 0x3fcdc1bd3446c000],
    [0x3fe934c69de74838, 0x3fce8c01b8cfe000],
    [0x3fe90d4f2f6752e6, 0x3fcf5509c0179000],
    [0x3fe8e6528effd79d, 0x3fd00e6c121fb800],
    [0x3fe8bfce9fcc007c, 0x3fd071b80e93d000],
    [0x3fe899c0dabec30e, 0x3fd0d46b9e867000],
    [0x3fe87427aa2317fb, 0x3fd13687334bd000],
    [0x3fe84f00acb39a08, 0x3fd1980d67234800],
    [0x3fe82a49e8653e55, 0x3fd1f8ffe0cc8000],
    [0x3fe8060195f40260, 0x3fd2595fd7636800],
    [0x3fe7e22563e0a329, 0x3fd2b9300914a800],
    [0x3fe7beb377dcb5ad, 0x3fd3187210436000],
    [0x3fe79baa679725c2, 0x3fd377266dec1800],
    [0x3fe77907f2170657, 0x3fd3d54ffbaf3000],
    [0x3fe756cadbd6130c, 0x3fd432eee32fe000],
];

/// 2^27, which splits `r` into a high part of 26 bits and the rest.
const TWO_27: f64 = 134_217_728.0;

/// Arguments in `[1 - 2^-4, 1 + 0x1.09p-4)` take glibc's path near 1 (bounds as bit patterns).
const NEAR_LO: u64 = 0x3fee_0000_0000_0000;
const NEAR_HI: u64 = 0x3ff1_0900_0000_0000;

/// The bits of `f64` `b`.
#[inline(always)]
fn f(b: u64) -> f64 {
    f64::from_bits(b)
}

/// Whether [`glibc_log`] takes `x`: positive, finite and normal (glibc's other branch handles
/// the rest).
#[inline(always)]
fn takes(x: f64) -> bool {
    (x.to_bits() >> 48).wrapping_sub(0x0010) < 0x7ff0 - 0x0010
}

/// glibc's `log` of a positive normal `x` ([`takes`]), both of its paths computed and one
/// kept, so that a loop of it has no branch. Each arithmetic operation is one of
/// `__ieee754_log_fma`'s, in its order; `mul_add` is its `vfmadd`.
#[inline(always)]
fn glibc_log(x: f64) -> f64 {
    let ix = x.to_bits();
    // Main path: x = 2^k z, z in [0x1.6p-1, 0x1.6p+0) split into 128 intervals; with c near the
    // centre of z's, log(x) = k ln2 + log(c) + log1p(z / c - 1).
    let tmp = ix.wrapping_sub(0x3fe6_0000_0000_0000);
    let i = ((tmp >> 45) & 0x7f) as usize;
    let kd = (((tmp as i64) >> 52) as i32) as f64;
    let z = f(ix.wrapping_sub(tmp & (0xfff << 52)));
    let [invc, logc] = TABLE[i];
    let w = kd.mul_add(f(LN2_HI), f(logc));
    let r = z.mul_add(f(invc), -1.0);
    let a12 = r.mul_add(f(A[2]), f(A[1]));
    let hi = r + w;
    let r2 = r * r;
    let lo = kd.mul_add(f(LN2_LO), (w - hi) + r);
    let r3 = r * r2;
    let a34 = r.mul_add(f(A[4]), f(A[3]));
    let lo = r2.mul_add(f(A[0]), lo);
    let main = r3.mul_add(a34.mul_add(r2, a12), lo) + hi;
    // Near 1: log1p(r) with r = x - 1, its r^2 / 2 term split so that it is exact.
    let r = x - 1.0;
    let b = |j: usize| f(B[j]);
    let r2 = r * r;
    let b123 = r2.mul_add(b(3), r.mul_add(b(2), b(1)));
    let b456 = r2.mul_add(b(6), r.mul_add(b(5), b(4)));
    let r3 = r * r2;
    let b7_10 = r3.mul_add(b(10), r2.mul_add(b(9), r.mul_add(b(8), b(7))));
    let poly = b7_10.mul_add(r3, b456).mul_add(r3, b123);
    let rhi = (-TWO_27).mul_add(r, r.mul_add(TWO_27, r));
    let rlo = r - rhi;
    let rhi2 = rhi * rhi;
    let hi = rhi2.mul_add(b(0), r);
    let lo = rhi2.mul_add(b(0), r - hi);
    let lo = (b(0) * rlo).mul_add(rhi + r, lo);
    let near = hi + poly.mul_add(r3, lo);
    if ix.wrapping_sub(NEAR_LO) < NEAR_HI - NEAR_LO {
        near
    } else {
        main
    }
}

/// `dst[i] = glibc_log(src[i])` for the entries [`takes`] (the others get unspecified values),
/// and whether it takes them all.
#[inline(always)]
fn chunk_ln(src: &[f64], dst: &mut [f64]) -> bool {
    let mut all = true;
    for (d, &x) in dst.iter_mut().zip(src) {
        all &= takes(x);
        *d = glibc_log(x);
    }
    all
}

/// [`chunk_ln`] compiled for the AVX-512 level.
///
/// # Safety
/// The CPU has the AVX-512 level's features.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn chunk_ln_avx512(src: &[f64], dst: &mut [f64]) -> bool {
    chunk_ln(src, dst)
}

/// [`chunk_ln`] compiled for the AVX2 level.
///
/// # Safety
/// The CPU has the AVX2 level's features.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn chunk_ln_avx2(src: &[f64], dst: &mut [f64]) -> bool {
    chunk_ln(src, dst)
}

/// A vector chunk function of the process's level.
type ChunkLn = unsafe fn(&[f64], &mut [f64]) -> bool;

/// The vector chunk function of the process's level, if it has one and it passed the probe.
fn vector_ln() -> Option<ChunkLn> {
    #[cfg(target_arch = "x86_64")]
    {
        // 0: not probed yet, 1: matches, 2: does not. Not a `OnceLock`: a fork while another
        // thread ran the probe would leave the child waiting on it for ever (contract R4);
        // threads that meet an unprobed state each run the probe, which gives them all the
        // same answer.
        static MATCHES_LIBM: AtomicU8 = AtomicU8::new(0);
        let chunk: ChunkLn = match simd_level() {
            SimdLevel::Avx512 => chunk_ln_avx512,
            SimdLevel::Avx2 => chunk_ln_avx2,
            _ => return None,
        };
        let known = match MATCHES_LIBM.load(Ordering::Relaxed) {
            0 => {
                let matches = probe_matches_libm(chunk);
                MATCHES_LIBM.store(if matches { 1 } else { 2 }, Ordering::Relaxed);
                matches
            }
            state => state == 1,
        };
        known.then_some(chunk)
    }
    #[cfg(not(target_arch = "x86_64"))]
    None
}

/// Arguments whose glibc `log` is not the correctly rounded result (found by comparing with
/// mpmath at 140 bits): 16 on the path near 1, 32 on the other.
const NOT_CORRECTLY_ROUNDED: [u64; 48] = [
    0x3fef7f1a16a56219,
    0x3ff0d65a6ee5b056,
    0x3fef3f13f4751870,
    0x3ff022cef1b0034c,
    0x3ff02fe82cb79989,
    0x3fee97db6b07e28b,
    0x3feea404fd6b4664,
    0x3ff0c79231b51a4e,
    0x3ff0ba90e9543152,
    0x3fee025f3440c4ff,
    0x3ff0e577e25cfac2,
    0x3feef948dde1356b,
    0x3ff03e984122be16,
    0x3ff0401b0b622d58,
    0x3ff0e1e2287e0f3c,
    0x3fee1844432f3e01,
    0x40054b31c25cdc04,
    0x3ff383fe13bfd26c,
    0x40022433c2cbca64,
    0x4035c9a380d8d78f,
    0x404dba09ee50d75b,
    0x4032fceb09bf3b0d,
    0x404dce10124cce43,
    0x40347d52ddb0fecc,
    0x400094f3e162bb7a,
    0x404181b10d3ac0a1,
    0x40488bb55de4ca5e,
    0x40439d7ce7c649b0,
    0x402d28d592658d78,
    0x40443757eda12c79,
    0x403429efb6607fc1,
    0x4037bcde5dc917c6,
    0x4034c644f4e92884,
    0x40333d4915e784c9,
    0x404fc2039454ff38,
    0x3ff3dadf8cb50e8b,
    0x4013a2c54ce47d70,
    0x40060d72d5cdf083,
    0x4015e2069efd5856,
    0x404a725cd3e14aaa,
    0x40439b1a56bf4b6b,
    0x4048a0855a5efd53,
    0x4042810e433e4b11,
    0x3ff3e590eb3ea919,
    0x4031ddb990d2a042,
    0x40347ec44b78c92b,
    0x401601dad5e35623,
    0x3ff11f399b6b5734,
];

/// Whether `chunk` (a level's [`chunk_ln`], which the CPU can run) gives the bits of `f64::ln`
/// on [`NOT_CORRECTLY_ROUNDED`], on every table interval at several exponents, and across the
/// path near 1.
fn probe_matches_libm(chunk: ChunkLn) -> bool {
    let mut args: Vec<f64> = NOT_CORRECTLY_ROUNDED.iter().map(|&b| f(b)).collect();
    for i in 0..128u64 {
        for (e, low) in [
            (-1022i64, 0x1234u64),
            (-3, 0x9_8765),
            (0, 0x55_5555),
            (1, 0x3),
            (9, 0xa_bcde),
            (1000, 0x77),
        ] {
            // The interval's mantissas start at 0x1.6p-1 (table index 0); a few low bits vary.
            let m = (0x6_0000_0000_0000u64 + (i << 45) + low) & 0xf_ffff_ffff_ffff;
            args.push(f((((e + 1023) as u64) << 52) | m));
        }
    }
    args.extend((0..=256).map(|j| 0.9375 + (1.064697265625 - 0.9375) * j as f64 / 256.0));
    args.retain(|&x| takes(x));
    let mut got = vec![0.0; args.len()];
    args.chunks(CHUNK)
        .zip(got.chunks_mut(CHUNK))
        // SAFETY: `chunk` is a level's, and `simd_level` only gives levels the CPU has.
        .all(|(a, g)| unsafe { chunk(a, g) })
        && args
            .iter()
            .zip(&got)
            .all(|(x, g)| x.ln().to_bits() == g.to_bits())
}

/// `ln` of every entry of `v` in place, with the bits of `f64::ln`: a vector chunk at a time
/// where the level has a chunk function that passed the probe ([`vector_ln`]), else through
/// [`ln_grouped`].
pub(crate) fn ln_in_place(v: &mut [f64]) {
    let Some(chunk) = vector_ln() else {
        return ln_grouped(v);
    };
    let mut out = [0.0f64; CHUNK];
    for c in v.chunks_mut(CHUNK) {
        let out = &mut out[..c.len()];
        // SAFETY: as in `probe_matches_libm`.
        if !unsafe { chunk(c, out) } {
            for (o, &x) in out.iter_mut().zip(c.iter()) {
                if !takes(x) {
                    *o = x.ln();
                }
            }
        }
        c.copy_from_slice(out);
    }
}

/// `ln` of every entry of `v` in place, with the bits of `f64::ln`, taking the entries near 1
/// first and the others after them. glibc's `log` takes a path of its own for arguments in
/// `[1 - 2^-4, 1 + 0x1.09p-4)`, and the exp-sums of short rows (in `[1, n]`) fall on both sides
/// of that bound at random, so one call after another in row order mispredicts its branch
/// about half the time (ln of random sums in (1, 2]: 6.1 ns a call in row order, 4.6 grouped).
/// Which side an entry counts as only decides the order of the calls, never a result.
fn ln_grouped(v: &mut [f64]) {
    const CHUNK: usize = 256;
    const NEAR_ONE: std::ops::Range<f64> = 0.9375..1.064697265625;
    let (mut near, mut far) = ([0u16; CHUNK], [0u16; CHUNK]);
    for chunk in v.chunks_mut(CHUNK) {
        // Both lists get every index; only one of them counts it (no branch on the value).
        let (mut a, mut b) = (0, 0);
        for (i, &x) in chunk.iter().enumerate() {
            let is_near = NEAR_ONE.contains(&x);
            (near[a], far[b]) = (i as u16, i as u16);
            a += is_near as usize;
            b += !is_near as usize;
        }
        for &i in near[..a].iter().chain(&far[..b]) {
            chunk[i as usize] = chunk[i as usize].ln();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Edges of both paths and of the range [`takes`], non-finite values, and random arguments
    /// near 1, in [1, 65) and across the exponents, in turn, `len` of them.
    fn arguments(len: usize, seed: u64) -> Vec<f64> {
        let mut next = crate::test_rng::lcg_uniform(seed);
        let edges = [
            0.9375f64,
            1.064697265625,
            1.0,
            0.0,
            -1.0,
            f64::MIN_POSITIVE,
            f64::MIN_POSITIVE / 3.0,
            f64::MAX,
        ];
        let special = [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, -0.0];
        (0..len)
            .map(|i| match i % 8 {
                0 => {
                    // Every edge itself and its two neighbours, in turn.
                    let k = i / 8;
                    let e = edges[k % edges.len()];
                    [e, e.next_down(), e.next_up()][(k / edges.len()) % 3]
                }
                1 => special[(i / 8) % special.len()],
                2 => 0.9375 + next() * 0.128,
                3 => f(((next() * 2046.0) as u64 + 1) << 52 | (next() * 4.5e15) as u64),
                _ => 1.0 + next() * 64.0,
            })
            .collect()
    }

    fn assert_bits_of_ln(args: &[f64], got: &[f64], what: &str) {
        for (i, (&x, &g)) in args.iter().zip(got).enumerate() {
            assert_eq!(
                g.to_bits(),
                x.ln().to_bits(),
                "{what}, entry {i}: ln({x:e})"
            );
        }
    }

    #[test]
    fn ln_grouped_and_ln_in_place_give_the_bits_of_ln() {
        for len in [0, 1, 2, 255, 256, 257, 1000] {
            let v = arguments(len, 99 + len as u64);
            let (mut grouped, mut in_place) = (v.clone(), v.clone());
            ln_grouped(&mut grouped);
            ln_in_place(&mut in_place);
            assert_bits_of_ln(&v, &grouped, "ln_grouped");
            assert_bits_of_ln(&v, &in_place, "ln_in_place");
        }
    }

    /// On x86-64 glibc the vector way is taken (so the test above covers it), and every level's
    /// chunk function gives the bits of `f64::ln` over many arguments of both paths.
    #[cfg(all(target_arch = "x86_64", target_os = "linux", target_env = "gnu"))]
    #[test]
    fn glibc_log_gives_the_bits_of_glibc_on_x86_64() {
        use crate::simd::cpu_has;
        if !cpu_has(SimdLevel::Avx2) {
            return;
        }
        let levels: &[(SimdLevel, ChunkLn)] = &[
            (SimdLevel::Avx2, chunk_ln_avx2),
            (SimdLevel::Avx512, chunk_ln_avx512),
        ];
        let many = if crate::emulated() { 2_000 } else { 400_000 };
        let args = arguments(many, 7);
        if !glibc_whose_log_is_replicated() {
            // Another libm (or glibc with another `log`): the probe may refuse the replica,
            // and `ln_in_place` then takes `f64::ln` (the test above checks its bits).
            return;
        }
        for &(level, chunk) in levels.iter().filter(|(l, _)| cpu_has(*l)) {
            assert!(probe_matches_libm(chunk), "{level:?}: the probe fails");
            let mut got = vec![0.0; args.len()];
            for (a, g) in args.chunks(CHUNK).zip(got.chunks_mut(CHUNK)) {
                // SAFETY: the CPU has `level`.
                let all = unsafe { chunk(a, g) };
                assert_eq!(all, a.iter().all(|&x| takes(x)));
                for (g, &x) in g.iter_mut().zip(a) {
                    if !takes(x) {
                        *g = x.ln();
                    }
                }
            }
            assert_bits_of_ln(&args, &got, &format!("{level:?}"));
        }
        if matches!(simd_level(), SimdLevel::Avx2 | SimdLevel::Avx512) {
            assert!(
                vector_ln().is_some(),
                "ln_in_place does not take the vector way"
            );
        }
    }

    /// Whether this process's glibc is one whose `log` is the one replicated: 2.28 (where
    /// Arm's `log` came in) to 2.36 (the version it was read from); later ones are not known
    /// to keep it.
    #[cfg(all(target_arch = "x86_64", target_os = "linux", target_env = "gnu"))]
    fn glibc_whose_log_is_replicated() -> bool {
        extern "C" {
            fn gnu_get_libc_version() -> *const std::ffi::c_char;
        }
        // SAFETY: glibc's function returns a pointer to a static NUL-terminated string.
        let version = unsafe { std::ffi::CStr::from_ptr(gnu_get_libc_version()) };
        let mut parts = version.to_str().unwrap_or("").split('.');
        let major: u32 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
        let minor: u32 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
        major == 2 && (28..=36).contains(&minor)
    }

    #[test]
    fn the_probe_fails_for_a_libm_of_other_bits() {
        // A chunk function that rounds one way differently stands for another libm.
        unsafe fn off_by_one_ulp(src: &[f64], dst: &mut [f64]) -> bool {
            for (d, &x) in dst.iter_mut().zip(src) {
                let y = x.ln();
                *d = if x == f(NOT_CORRECTLY_ROUNDED[20]) {
                    y.next_up()
                } else {
                    y
                };
            }
            true
        }
        unsafe fn exact(src: &[f64], dst: &mut [f64]) -> bool {
            for (d, &x) in dst.iter_mut().zip(src) {
                *d = x.ln();
            }
            true
        }
        assert!(probe_matches_libm(exact));
        assert!(!probe_matches_libm(off_by_one_ulp));
    }
}
