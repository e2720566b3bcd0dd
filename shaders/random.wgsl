// random.wgsl — Philox4x32-10, the counter-based generator of Salmon et al. (SC 2011, Random123),
// prepended to every shader after common.wgsl, bit for bit the same as `rng::philox4x32_10` in
// src/rng.rs. A draw is a pure function of (counter, key), so any invocation makes its own random
// numbers with no state: the key is the run's seed, the counter the coordinates of what is drawn
// (each user documents its layout and takes its own stream number in one counter word).

const PHILOX_M0: u32 = 0xD2511F53u;
const PHILOX_M1: u32 = 0xCD9E8D57u;
const PHILOX_W0: u32 = 0x9E3779B9u;
const PHILOX_W1: u32 = 0xBB67AE85u;

// The high 32 bits of the 64-bit product a·b, from 16-bit halves (WGSL has no 64-bit integers).
fn mul_hi_u32(a: u32, b: u32) -> u32 {
    let a_lo = a & 0xffffu;
    let a_hi = a >> 16u;
    let b_lo = b & 0xffffu;
    let b_hi = b >> 16u;
    let lo_lo = a_lo * b_lo;
    let hi_lo = a_hi * b_lo;
    // At most 0xffff + 0xffff + 0xfffe0001 = 0xffffffff: no carry is lost.
    let cross = (lo_lo >> 16u) + (hi_lo & 0xffffu) + a_lo * b_hi;
    return a_hi * b_hi + (hi_lo >> 16u) + (cross >> 16u);
}

fn philox_round(c: vec4<u32>, k: vec2<u32>) -> vec4<u32> {
    return vec4<u32>(
        mul_hi_u32(PHILOX_M1, c.z) ^ c.y ^ k.x,
        PHILOX_M1 * c.z,
        mul_hi_u32(PHILOX_M0, c.x) ^ c.w ^ k.y,
        PHILOX_M0 * c.x,
    );
}

// Four independent uniformly distributed 32-bit words for `counter` under `key`.
fn philox4x32_10(counter: vec4<u32>, key: vec2<u32>) -> vec4<u32> {
    var c = counter;
    var k = key;
    for (var r = 0u; r < 10u; r++) {
        if r > 0u {
            k += vec2<u32>(PHILOX_W0, PHILOX_W1);
        }
        c = philox_round(c, k);
    }
    return c;
}

// Uniform in [0, 1) from the top 24 bits of a word: exact in f32, so the same on every device.
fn unit_uniform(bits: u32) -> f32 {
    return f32(bits >> 8u) * (1.0 / 16777216.0);
}

// Uniform in [−1, 1) from the top 24 bits of a word, exactly as `unit_uniform`.
fn signed_uniform(bits: u32) -> f32 {
    return f32(bits >> 8u) * (1.0 / 8388608.0) - 1.0;
}
