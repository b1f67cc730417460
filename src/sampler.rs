//! The sampler chain, on logits only: penalties → top-k → top-p → min-p → temperature → draw.
//!
//! Order and stage semantics are llama.cpp's (src/llama-sampling.cpp, the chain current Ollama runs);
//! option names and defaults are Ollama's (api/types.go DefaultOptions, repeat_penalty 1.1 as
//! Ollama ≤ v0.32.9). Top-p and min-p see temperature-1 probabilities because temperature comes
//! last. A constraint's mask (structured outputs) comes before every stage. The candidate buffer
//! is allocated once, at construction.

use crate::error::{Error, Result};

/// Sampling options with Ollama's names and defaults.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SamplerOptions {
    /// 0 = greedy (arg-max after penalties).
    pub temperature: f32,
    /// ≤ 0 disables.
    pub top_k: i32,
    /// ≥ 1 disables.
    pub top_p: f32,
    /// 0 disables.
    pub min_p: f32,
    /// 1 disables.
    pub repeat_penalty: f32,
    /// Window of recent tokens (prompt included) the penalties see; −1 = num_ctx, 0 = off.
    pub repeat_last_n: i32,
    pub presence_penalty: f32,
    pub frequency_penalty: f32,
    /// −1 = random.
    pub seed: i64,
}

impl Default for SamplerOptions {
    fn default() -> Self {
        SamplerOptions {
            temperature: 0.8,
            top_k: 40,
            top_p: 0.9,
            min_p: 0.0,
            repeat_penalty: 1.1,
            repeat_last_n: 64,
            presence_penalty: 0.0,
            frequency_penalty: 0.0,
            seed: -1,
        }
    }
}

impl SamplerOptions {
    /// Checks every value's domain; the error names the option and the value.
    pub fn validate(&self) -> Result<()> {
        let finite = |name: &str, v: f32| {
            if v.is_finite() {
                Ok(())
            } else {
                Err(Error::option(name, v, "must be a finite number"))
            }
        };
        finite("temperature", self.temperature)?;
        finite("top_p", self.top_p)?;
        finite("min_p", self.min_p)?;
        finite("repeat_penalty", self.repeat_penalty)?;
        finite("presence_penalty", self.presence_penalty)?;
        finite("frequency_penalty", self.frequency_penalty)?;
        if self.temperature < 0.0 {
            return Err(Error::option("temperature", self.temperature, "must be ≥ 0"));
        }
        if !(0.0..=1.0).contains(&self.top_p) {
            return Err(Error::option("top_p", self.top_p, "must be between 0 and 1"));
        }
        if !(0.0..=1.0).contains(&self.min_p) {
            return Err(Error::option("min_p", self.min_p, "must be between 0 and 1"));
        }
        if self.repeat_penalty <= 0.0 {
            return Err(Error::option("repeat_penalty", self.repeat_penalty, "must be > 0"));
        }
        if self.repeat_last_n < -1 {
            return Err(Error::option("repeat_last_n", self.repeat_last_n, "must be ≥ −1"));
        }
        if self.seed < -1 {
            return Err(Error::option("seed", self.seed, "must be ≥ −1"));
        }
        Ok(())
    }
}

/// One candidate token.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candidate {
    pub id: u32,
    pub logit: f32,
}

/// The stateful chain: options, the penalty window, the RNG and reusable buffers.
pub struct Sampler {
    pub opts: SamplerOptions,
    window: usize,
    history: std::collections::VecDeque<u32>,
    sorted_hist: Vec<u32>,
    pairs: Vec<i32>,
    cand: Vec<Candidate>,
    probs: Vec<f32>,
    rng: Mt19937,
}

impl Sampler {
    /// Builds a chain for a vocabulary of `n_vocab` and a context of `num_ctx` (for −1 windows).
    pub fn new(opts: SamplerOptions, n_vocab: usize, num_ctx: usize) -> Result<Sampler> {
        opts.validate()?;
        let window = match opts.repeat_last_n {
            -1 => num_ctx,
            n => n.max(0) as usize,
        };
        let seed = if opts.seed < 0 {
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default();
            (t.as_nanos() as u64 ^ std::process::id() as u64) as u32
        } else {
            opts.seed as u32
        };
        Ok(Sampler {
            opts,
            window,
            history: std::collections::VecDeque::with_capacity(window + 1),
            sorted_hist: Vec::with_capacity(window),
            pairs: Vec::with_capacity(2 * window),
            cand: Vec::with_capacity(n_vocab),
            probs: Vec::with_capacity(n_vocab),
            rng: Mt19937::new(seed),
        })
    }

    /// Records a token in the penalty window (prompt tokens too, as llama-server does).
    pub fn accept(&mut self, id: u32) {
        if self.window == 0 {
            return;
        }
        if self.history.len() == self.window {
            self.history.pop_front();
        }
        self.history.push_back(id);
    }

    /// Forgets the penalty window.
    pub fn reset(&mut self) {
        self.history.clear();
    }

    /// Picks the next token from raw logits.
    pub fn sample(&mut self, logits: &[f32]) -> u32 {
        self.sample_masked(logits, None)
    }

    /// Picks the next token among those a constraint allows (`mask`: bit `i % 32` of word
    /// `i / 32`), the mask applied before every other stage. Penalties change each token's logit
    /// on its own, so applying them first and dropping masked tokens after gives the same chain.
    pub fn sample_masked(&mut self, logits: &[f32], mask: Option<&[u32]>) -> u32 {
        self.cand.clear();
        self.cand
            .extend(logits.iter().enumerate().map(|(i, &l)| Candidate { id: i as u32, logit: l }));
        self.apply_penalties();
        if let Some(m) = mask {
            self.cand.retain(|c| crate::constraint::allowed(m, c.id));
            if self.cand.is_empty() {
                // invariant: the constraint refuses an empty mask before it reaches here
                return 0;
            }
        }
        if self.opts.temperature <= 0.0 {
            // ref: llama_sampler_temp_apply: t ≤ 0 keeps only the arg-max
            return argmax(&self.cand);
        }
        top_k(&mut self.cand, self.opts.top_k);
        self.draw()
    }

    /// Candidates a device front end must return for this chain, when it can run one: 1 when
    /// greedy, top_k when that is set and at most `max_k`; `None` when the chain needs every
    /// logit (no top-k).
    pub fn front_k(&self, max_k: usize) -> Option<usize> {
        if self.opts.temperature <= 0.0 {
            return Some(1);
        }
        let k = usize::try_from(self.opts.top_k).ok()?;
        (1..=max_k).contains(&k).then_some(k)
    }

    /// The penalty window as (id, count) pairs, each distinct id once, for a device front end;
    /// empty when no penalty applies.
    pub fn penalty_pairs(&mut self) -> &[i32] {
        self.pairs.clear();
        let o = &self.opts;
        if o.repeat_penalty == 1.0 && o.frequency_penalty == 0.0 && o.presence_penalty == 0.0 {
            return &self.pairs;
        }
        self.sorted_hist.clear();
        self.sorted_hist.extend(self.history.iter().copied());
        self.sorted_hist.sort_unstable();
        for run in self.sorted_hist.chunk_by(|a, b| a == b) {
            self.pairs.extend([run[0] as i32, run.len() as i32]);
        }
        &self.pairs
    }

    /// The chain's first stages on the host, as a device front end runs them: penalties, then
    /// the `k` best (descending, ties to the lower id) into `out`, without a candidate per
    /// vocabulary entry. One pass keeps the best k + h raw logits (h: distinct ids in the
    /// penalty window); the window's ids are then scored with their penalties. That set holds
    /// the true top k: at most h of the raw best k + h are penalized, and every id outside the
    /// window keeps its raw logit.
    pub fn front_host(&mut self, logits: &[f32], k: usize, out: &mut Vec<(u32, f32)>) {
        let o = self.opts.clone();
        let pairs = self.penalty_pairs().len() / 2;
        let m = (k + pairs).min(logits.len());
        self.cand.clear();
        let mut floor = f32::NEG_INFINITY;
        for (i, &l) in logits.iter().enumerate() {
            if self.cand.len() < m || l > floor {
                let c = Candidate { id: i as u32, logit: l };
                let at = self.cand.partition_point(|x| by_logit_desc(x, &c).is_lt());
                self.cand.insert(at, c);
                self.cand.truncate(m);
                if self.cand.len() == m {
                    floor = self.cand[m - 1].logit;
                }
            }
        }
        for p in self.pairs.chunks_exact(2) {
            let Some(&raw) = logits.get(p[0] as usize) else { continue };
            let mut l = if raw <= 0.0 { raw * o.repeat_penalty } else { raw / o.repeat_penalty };
            l -= p[1] as f32 * o.frequency_penalty + o.presence_penalty;
            match self.cand.iter_mut().find(|c| c.id == p[0] as u32) {
                Some(c) => c.logit = l,
                None => self.cand.push(Candidate { id: p[0] as u32, logit: l }),
            }
        }
        top_k(&mut self.cand, k as i32);
        out.clear();
        out.extend(self.cand.iter().map(|c| (c.id, c.logit)));
    }

    /// Picks the next token from the candidates a device front end returned (penalties and
    /// top-k applied, descending): the rest of the chain, on the host.
    pub fn sample_front(&mut self, front: &[(u32, f32)]) -> u32 {
        self.cand.clear();
        self.cand.extend(front.iter().map(|&(id, logit)| Candidate { id, logit }));
        if self.opts.temperature <= 0.0 || self.cand.len() <= 1 {
            return self.cand.first().map_or(0, |c| c.id);
        }
        self.draw()
    }

    /// top-p, min-p, temperature and the draw over sorted candidates.
    fn draw(&mut self) -> u32 {
        let o = &self.opts;
        top_p(&mut self.cand, o.top_p, &mut self.probs);
        min_p(&mut self.cand, o.min_p);
        for c in &mut self.cand {
            c.logit /= o.temperature;
        }
        softmax_into(&self.cand, &mut self.probs);
        let u = self.rng.next_f64();
        let mut acc = 0f64;
        for (c, p) in self.cand.iter().zip(&self.probs) {
            acc += *p as f64;
            if u < acc {
                return c.id;
            }
        }
        self.cand.last().map_or(0, |c| c.id)
    }

    /// Repeat (divide positive, multiply non-positive, once per distinct token), then frequency
    /// (× count) and presence penalties (ref: llama_sampler_penalties_apply).
    fn apply_penalties(&mut self) {
        if self.penalty_pairs().is_empty() {
            return;
        }
        let o = &self.opts;
        for p in self.pairs.chunks_exact(2) {
            if let Some(c) = self.cand.get_mut(p[0] as usize) {
                if c.logit <= 0.0 {
                    c.logit *= o.repeat_penalty;
                } else {
                    c.logit /= o.repeat_penalty;
                }
                c.logit -= p[1] as f32 * o.frequency_penalty + o.presence_penalty;
            }
        }
    }
}

fn argmax(c: &[Candidate]) -> u32 {
    let mut best = c[0];
    for x in &c[1..] {
        if x.logit > best.logit {
            best = *x;
        }
    }
    best.id
}

fn by_logit_desc(a: &Candidate, b: &Candidate) -> std::cmp::Ordering {
    b.logit.total_cmp(&a.logit).then(a.id.cmp(&b.id))
}

/// Keeps the k highest logits, sorted descending; k ≤ 0 sorts everything (ref: llama_sampler_top_k).
pub fn top_k(c: &mut Vec<Candidate>, k: i32) {
    if k > 0 && (k as usize) < c.len() {
        let k = k as usize;
        c.select_nth_unstable_by(k - 1, by_logit_desc);
        c.truncate(k);
    }
    c.sort_unstable_by(by_logit_desc);
}

/// Softmax of sorted candidates' logits into `out`.
pub fn softmax_into(c: &[Candidate], out: &mut Vec<f32>) {
    out.clear();
    let max = c.iter().map(|x| x.logit).fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0f64;
    out.extend(c.iter().map(|x| {
        let e = (x.logit - max).exp();
        sum += e as f64;
        e
    }));
    let inv = (1.0 / sum) as f32;
    out.iter_mut().for_each(|p| *p *= inv);
}

/// Keeps the smallest prefix whose probability reaches p (inclusive), at least one
/// (ref: llama_sampler_top_p). Expects candidates sorted descending.
pub fn top_p(c: &mut Vec<Candidate>, p: f32, probs: &mut Vec<f32>) {
    if p >= 1.0 || c.len() <= 1 {
        return;
    }
    softmax_into(c, probs);
    let mut cum = 0f32;
    let mut keep = c.len();
    for (i, q) in probs.iter().enumerate() {
        cum += q;
        if cum >= p {
            keep = i + 1;
            break;
        }
    }
    c.truncate(keep.max(1));
}

/// Keeps logits ≥ max + ln(p), i.e. probability ≥ p × the top probability (ref: llama_sampler_min_p).
pub fn min_p(c: &mut Vec<Candidate>, p: f32) {
    if p <= 0.0 || c.is_empty() {
        return;
    }
    let max = c.iter().map(|x| x.logit).fold(f32::NEG_INFINITY, f32::max);
    let floor = max + p.ln();
    c.retain(|x| x.logit >= floor);
}

/// The 32-bit Mersenne Twister (std::mt19937, the generator llama.cpp's dist sampler uses).
pub struct Mt19937 {
    mt: [u32; 624],
    idx: usize,
}

impl Mt19937 {
    /// Seeds as std::mt19937(seed).
    pub fn new(seed: u32) -> Self {
        let mut mt = [0u32; 624];
        mt[0] = seed;
        for i in 1..624 {
            mt[i] =
                1812433253u32.wrapping_mul(mt[i - 1] ^ (mt[i - 1] >> 30)).wrapping_add(i as u32);
        }
        Mt19937 { mt, idx: 624 }
    }

    /// Next 32-bit output.
    pub fn next_u32(&mut self) -> u32 {
        if self.idx >= 624 {
            for i in 0..624 {
                let y = (self.mt[i] & 0x8000_0000) | (self.mt[(i + 1) % 624] & 0x7fff_ffff);
                let mut v = self.mt[(i + 397) % 624] ^ (y >> 1);
                if y & 1 != 0 {
                    v ^= 0x9908_b0df;
                }
                self.mt[i] = v;
            }
            self.idx = 0;
        }
        let mut y = self.mt[self.idx];
        self.idx += 1;
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c_5680;
        y ^= (y << 15) & 0xefc6_0000;
        y ^ (y >> 18)
    }

    /// Uniform in [0, 1) with 53 bits.
    pub fn next_f64(&mut self) -> f64 {
        let a = (self.next_u32() >> 5) as u64;
        let b = (self.next_u32() >> 6) as u64;
        ((a << 26) | b) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cands(l: &[f32]) -> Vec<Candidate> {
        l.iter().enumerate().map(|(i, &x)| Candidate { id: i as u32, logit: x }).collect()
    }
    fn opts() -> SamplerOptions {
        SamplerOptions { repeat_penalty: 1.0, ..Default::default() }
    }

    #[test]
    fn mt19937_matches_the_standard_sequence() {
        // std::mt19937 with the default seed 5489: the 10000th output is 4123659995 (C++ [rand.predef])
        let mut r = Mt19937::new(5489);
        let mut v = 0;
        for _ in 0..10000 {
            v = r.next_u32();
        }
        assert_eq!(v, 4123659995);
    }

    #[test]
    fn greedy_is_argmax_after_penalties() {
        let mut s = Sampler::new(SamplerOptions { temperature: 0.0, ..opts() }, 4, 16).unwrap();
        assert_eq!(s.sample(&[0.1, 2.0, 1.9, -1.0]), 1);
        let mut s =
            Sampler::new(SamplerOptions { temperature: 0.0, repeat_penalty: 1.1, ..opts() }, 4, 16)
                .unwrap();
        s.accept(1);
        // 2.0 / 1.1 = 1.818 < 1.9
        assert_eq!(s.sample(&[0.1, 2.0, 1.9, -1.0]), 2);
    }

    #[test]
    fn repeat_penalty_divides_positive_and_multiplies_negative_once_per_token() {
        let mut s = Sampler::new(
            SamplerOptions {
                repeat_penalty: 2.0,
                frequency_penalty: 0.5,
                presence_penalty: 0.25,
                ..opts()
            },
            3,
            16,
        )
        .unwrap();
        for t in [0, 0, 2] {
            s.accept(t);
        }
        s.cand = cands(&[4.0, 1.0, -1.0]);
        s.apply_penalties();
        let l: Vec<f32> = s.cand.iter().map(|c| c.logit).collect();
        // token 0: 4/2 − 2·0.5 − 0.25; token 2: −1·2 − 0.5 − 0.25
        assert_eq!(l, vec![0.75, 1.0, -2.75]);
    }

    #[test]
    fn penalty_window_keeps_last_n() {
        let mut s = Sampler::new(SamplerOptions { repeat_last_n: 2, ..opts() }, 4, 16).unwrap();
        for t in [0, 1, 2] {
            s.accept(t);
        }
        assert_eq!(s.history.iter().copied().collect::<Vec<_>>(), vec![1, 2]);
        let off = Sampler::new(SamplerOptions { repeat_last_n: -1, ..opts() }, 4, 16).unwrap();
        assert_eq!(off.window, 16);
    }

    #[test]
    fn top_k_keeps_k_sorted() {
        let mut c = cands(&[1.0, 5.0, 3.0, 4.0]);
        top_k(&mut c, 2);
        assert_eq!(c.iter().map(|c| c.id).collect::<Vec<_>>(), vec![1, 3]);
    }

    #[test]
    fn top_p_is_inclusive_of_the_crossing_token() {
        // probabilities ≈ 0.665, 0.245, 0.090
        let mut c = cands(&[2.0, 1.0, 0.0]);
        top_k(&mut c, 0);
        let mut p = vec![];
        top_p(&mut c, 0.9, &mut p);
        assert_eq!(c.len(), 2);
        let mut c = cands(&[2.0, 1.0, 0.0]);
        top_k(&mut c, 0);
        top_p(&mut c, 0.5, &mut p);
        assert_eq!(c.len(), 1);
    }

    #[test]
    fn min_p_drops_tokens_below_fraction_of_max() {
        let mut c = cands(&[0.0, -1.0, -3.0]);
        // keep prob ≥ 0.2·p_max ⇔ logit ≥ ln 0.2 ≈ −1.61
        min_p(&mut c, 0.2);
        assert_eq!(c.len(), 2);
    }

    #[test]
    fn fixed_seed_repeats_and_temperature_spreads() {
        let logits: Vec<f32> = (0..100).map(|i| (i % 7) as f32 * 0.3).collect();
        let run = |seed| {
            let mut s =
                Sampler::new(SamplerOptions { seed, top_k: 0, top_p: 1.0, ..opts() }, 100, 16)
                    .unwrap();
            (0..50).map(|_| s.sample(&logits)).collect::<Vec<_>>()
        };
        assert_eq!(run(42), run(42));
        assert_ne!(run(42), run(43));
        assert!(run(42).iter().collect::<std::collections::HashSet<_>>().len() > 3);
    }

    #[test]
    fn the_host_front_end_continues_the_full_chain() {
        let nv = 5000;
        let logits: Vec<f32> = (0..nv).map(|i| ((i * 7919 % 1000) as f32 / 100.0) - 5.0).collect();
        for o in [
            SamplerOptions { seed: 3, ..Default::default() },
            SamplerOptions {
                seed: 4,
                top_k: 64,
                presence_penalty: -2.0,
                repeat_penalty: 0.7,
                ..Default::default()
            },
            SamplerOptions {
                temperature: 0.0,
                repeat_penalty: 3.0,
                frequency_penalty: 1.0,
                ..Default::default()
            },
        ] {
            let (mut full, mut front) = (
                Sampler::new(o.clone(), nv, 64).unwrap(),
                Sampler::new(o.clone(), nv, 64).unwrap(),
            );
            let k = front.front_k(64).unwrap();
            let mut cands = vec![];
            for step in 0..200 {
                let a = full.sample(&logits);
                front.front_host(&logits, k, &mut cands);
                let b = front.sample_front(&cands);
                assert_eq!(a, b, "{o:?} step {step}");
                full.accept(a);
                front.accept(b);
            }
        }
    }

    #[test]
    fn invalid_values_name_the_option() {
        let e = SamplerOptions { top_p: 1.5, ..opts() }.validate().unwrap_err().to_string();
        assert!(e.contains("top_p") && e.contains("1.5"), "{e}");
        let e = SamplerOptions { temperature: -1.0, ..opts() }.validate().unwrap_err().to_string();
        assert!(e.contains("temperature"), "{e}");
    }
}
