;; Exact modular arithmetic on 64-bit words for the refresh's integer polynomials (integer-mask.ts,
;; rns.ts). JavaScript has no 64-bit integers that do not allocate (V8 lowers BigInt multiply but
;; not shifts, compares or loop-carried values), so the loops over N coefficients run here.
;; Source of modular-words-wasm.ts (npm run wasm); test/integer-mask.test.ts checks they agree.
;;
;; Products by a fixed factor c modulo q < 2^62 are Shoup's: with c' = floor(c 2^64 / q),
;; x c - floor(x c' / 2^64) q lies in [0, 2q) for any x < 2^64: one subtraction finishes.
;; Pointers are byte offsets into the exported memory; integers are little-endian 64-bit words.
(module
  (memory (export "memory") 1)

  ;; High 64 bits of a * b.
  (func $mulhi (param $a i64) (param $b i64) (result i64)
    (local $a0 i64) (local $a1 i64) (local $b0 i64) (local $b1 i64)
    (local $p00 i64) (local $p01 i64) (local $p10 i64)
    (local.set $a0 (i64.and (local.get $a) (i64.const 0xffffffff)))
    (local.set $a1 (i64.shr_u (local.get $a) (i64.const 32)))
    (local.set $b0 (i64.and (local.get $b) (i64.const 0xffffffff)))
    (local.set $b1 (i64.shr_u (local.get $b) (i64.const 32)))
    (local.set $p00 (i64.mul (local.get $a0) (local.get $b0)))
    (local.set $p01 (i64.mul (local.get $a0) (local.get $b1)))
    (local.set $p10 (i64.mul (local.get $a1) (local.get $b0)))
    (i64.add
      (i64.add
        (i64.add (i64.mul (local.get $a1) (local.get $b1)) (i64.shr_u (local.get $p01) (i64.const 32)))
        (i64.shr_u (local.get $p10) (i64.const 32)))
      (i64.shr_u
        (i64.add
          (i64.add (i64.shr_u (local.get $p00) (i64.const 32)) (i64.and (local.get $p01) (i64.const 0xffffffff)))
          (i64.and (local.get $p10) (i64.const 0xffffffff)))
        (i64.const 32))))

  ;; x c mod q (c < q < 2^62, cs = floor(c 2^64 / q)).
  (func $mulmod (param $x i64) (param $c i64) (param $cs i64) (param $q i64) (result i64)
    (local $r i64)
    (local.set $r (i64.sub (i64.mul (local.get $x) (local.get $c)) (i64.mul (call $mulhi (local.get $x) (local.get $cs)) (local.get $q))))
    (select (i64.sub (local.get $r) (local.get $q)) (local.get $r) (i64.ge_u (local.get $r) (local.get $q))))

  ;; a - b mod q for a, b < q.
  (func $submod (param $a i64) (param $b i64) (param $q i64) (result i64)
    (select (i64.sub (local.get $a) (local.get $b)) (i64.sub (i64.add (local.get $a) (local.get $q)) (local.get $b)) (i64.ge_u (local.get $a) (local.get $b))))

  ;; The words-word integer at $p modulo q: Horner from the top word (radix = 2^64 mod q, one = floor(2^64 / q)).
  ;; Shoup's product takes any 64-bit x, so the top word goes into the first product unreduced.
  (func $wordsmod (param $p i32) (param $words i32) (param $q i64) (param $radix i64) (param $radixs i64) (param $ones i64) (result i64)
    (local $x i64) (local $w i32) (local $s i64)
    (local.set $w (i32.sub (local.get $words) (i32.const 1)))
    (local.set $x (i64.load (i32.add (local.get $p) (i32.shl (local.get $w) (i32.const 3)))))
    (if (i32.eqz (local.get $w)) (then (return (call $mulmod (local.get $x) (i64.const 1) (local.get $ones) (local.get $q)))))
    (block $done
      (loop $next
        (br_if $done (i32.eqz (local.get $w)))
        (local.set $w (i32.sub (local.get $w) (i32.const 1)))
        (local.set $s (i64.add
          (call $mulmod (local.get $x) (local.get $radix) (local.get $radixs) (local.get $q))
          (call $mulmod (i64.load (i32.add (local.get $p) (i32.shl (local.get $w) (i32.const 3)))) (i64.const 1) (local.get $ones) (local.get $q))))
        (local.set $x (select (i64.sub (local.get $s) (local.get $q)) (local.get $s) (i64.ge_u (local.get $s) (local.get $q))))
        (br $next)))
    (local.get $x))

  ;; out[i] = (v_i - sub) mod q for the n integers v_i of `words` words at $data.
  (func (export "residues") (param $data i32) (param $words i32) (param $n i32) (param $q i64) (param $radix i64) (param $radixs i64) (param $ones i64) (param $sub i64) (param $out i32)
    (local $i i32) (local $stride i32)
    (local.set $stride (i32.shl (local.get $words) (i32.const 3)))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
        (i64.store (i32.add (local.get $out) (i32.shl (local.get $i) (i32.const 3)))
          (call $submod
            (call $wordsmod (i32.add (local.get $data) (i32.mul (local.get $i) (local.get $stride))) (local.get $words) (local.get $q) (local.get $radix) (local.get $radixs) (local.get $ones))
            (local.get $sub) (local.get $q)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next))))

  ;; The remainder round(X / den) leaves, X = r num with r = v - W: t = X mod den (rD: r mod den, given),
  ;; rounded up (rho = t - den) when 2t > den, or on a tie when r > 0 (halves away from zero; $pos: r > 0).
  ;; Writes t to $t and 1 (up) or 0 to the byte at $up.
  (func (export "rounding") (param $rd i32) (param $pos i32) (param $n i32) (param $den i64) (param $numd i64) (param $numds i64) (param $t i32) (param $up i32)
    (local $i i32) (local $ti i64) (local $rest i64)
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
        (local.set $ti (call $mulmod (i64.load (i32.add (local.get $rd) (i32.shl (local.get $i) (i32.const 3)))) (local.get $numd) (local.get $numds) (local.get $den)))
        (i64.store (i32.add (local.get $t) (i32.shl (local.get $i) (i32.const 3))) (local.get $ti))
        (local.set $rest (i64.sub (local.get $den) (local.get $ti)))
        (i32.store8 (i32.add (local.get $up) (local.get $i))
          (i32.or
            (i64.gt_u (local.get $ti) (local.get $rest))
            (i32.and (i64.eq (local.get $ti) (local.get $rest)) (i32.load8_u (i32.add (local.get $pos) (local.get $i))))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next))))

;; round(r_i num / den) mod q, or its negation ($neg), for r_i = v_i - sub (words at $data): with
  ;; rho = t_i (rounded down) or t_i - den (up, $up[i] = 1), the value is (r num - rho) / den, so mod q
  ;; r c1 - t c2 + up with c1 = num den^-1 and c2 = den^-1 (c1s, c2s: Shoup constants).
  (func (export "scaledresidues") (param $data i32) (param $words i32) (param $n i32) (param $q i64) (param $radix i64) (param $radixs i64) (param $ones i64) (param $sub i64)
    (param $c1 i64) (param $c1s i64) (param $c2 i64) (param $c2s i64) (param $t i32) (param $up i32) (param $neg i32) (param $out i32)
    (local $i i32) (local $stride i32) (local $r i64) (local $y i64) (local $s i64)
    (local.set $stride (i32.shl (local.get $words) (i32.const 3)))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
        (local.set $r (call $submod
          (call $wordsmod (i32.add (local.get $data) (i32.mul (local.get $i) (local.get $stride))) (local.get $words) (local.get $q) (local.get $radix) (local.get $radixs) (local.get $ones))
          (local.get $sub) (local.get $q)))
        (local.set $y (call $submod
          (call $mulmod (local.get $r) (local.get $c1) (local.get $c1s) (local.get $q))
          (call $mulmod (i64.load (i32.add (local.get $t) (i32.shl (local.get $i) (i32.const 3)))) (local.get $c2) (local.get $c2s) (local.get $q))
          (local.get $q)))
        (local.set $s (i64.add (local.get $y) (i64.extend_i32_u (i32.load8_u (i32.add (local.get $up) (local.get $i))))))
        (local.set $y (select (i64.sub (local.get $s) (local.get $q)) (local.get $s) (i64.ge_u (local.get $s) (local.get $q))))
        (if (local.get $neg) (then (local.set $y (select (i64.sub (local.get $q) (local.get $y)) (i64.const 0) (i64.ne (local.get $y) (i64.const 0))))))
        (i64.store (i32.add (local.get $out) (i32.shl (local.get $i) (i32.const 3))) (local.get $y))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next))))

  ;; $pos[i] = 1 when the words-word integer v_i at $data exceeds w (at $w), else 0.
  (func (export "above") (param $data i32) (param $words i32) (param $n i32) (param $w i32) (param $pos i32)
    (local $i i32) (local $k i32) (local $p i32) (local $a i64) (local $b i64) (local $res i32)
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
        (local.set $p (i32.add (local.get $data) (i32.mul (local.get $i) (i32.shl (local.get $words) (i32.const 3)))))
        (local.set $k (local.get $words))
        (local.set $res (i32.const 0))
        (block $cmp
          (loop $word
            (br_if $cmp (i32.eqz (local.get $k)))
            (local.set $k (i32.sub (local.get $k) (i32.const 1)))
            (local.set $a (i64.load (i32.add (local.get $p) (i32.shl (local.get $k) (i32.const 3)))))
            (local.set $b (i64.load (i32.add (local.get $w) (i32.shl (local.get $k) (i32.const 3)))))
            (br_if $word (i64.eq (local.get $a) (local.get $b)))
            (local.set $res (i64.gt_u (local.get $a) (local.get $b)))))
        (i32.store8 (i32.add (local.get $pos) (local.get $i)) (local.get $res))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next))))

  ;; The key holder's CRT: for n coefficients given by their residues modulo k primes (prime-major at
  ;; $w), v_i = y_i + Q exactly, y_i the representative in (-Q/2, Q/2), as $limbs 32-bit limbs packed
  ;; two to a 64-bit word at $out. y = S - K Q with S = sum_j u_j (Q/q_j), u_j = w_j (Q/q_j)^-1 mod q_j,
  ;; and K = round(sum_j u_j / q_j) in doubles (exact unless |y| is within k 2^-52 Q of Q/2: an overflow
  ;; either way, which the caller's range check sees). All sums wrap modulo 2^(32 limbs), which holds v.
  ;; $consts: per prime q_j, inv_j, its Shoup constant (3 words); $p: Q/q_j as limbs (k x limbs words);
  ;; $t: (1 - K) Q mod 2^(32 limbs) as limbs, K = 0..k ((k + 1) x limbs words); $acc: limbs words.
  (func (export "crt") (param $w i32) (param $k i32) (param $n i32) (param $consts i32) (param $p i32) (param $t i32) (param $limbs i32) (param $acc i32) (param $out i32)
    (local $i i32) (local $j i32) (local $m i32) (local $c i32) (local $q i64) (local $u i64) (local $ulo i64) (local $uhi i64)
    (local $pm i64) (local $prod i64) (local $a i32) (local $v f64) (local $kk i32) (local $s i64) (local $carry i64) (local $o i32)
    (block $done
      (loop $coef
        (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
        ;; acc = 0
        (local.set $m (i32.const 0))
        (block $z (loop $zl
          (br_if $z (i32.ge_u (local.get $m) (local.get $limbs)))
          (i64.store (i32.add (local.get $acc) (i32.shl (local.get $m) (i32.const 3))) (i64.const 0))
          (local.set $m (i32.add (local.get $m) (i32.const 1)))
          (br $zl)))
        (local.set $v (f64.const 0))
        (local.set $j (i32.const 0))
        (block $pj (loop $pl
          (br_if $pj (i32.ge_u (local.get $j) (local.get $k)))
          (local.set $c (i32.add (local.get $consts) (i32.mul (local.get $j) (i32.const 24))))
          (local.set $q (i64.load (local.get $c)))
          (local.set $u (call $mulmod
            (i64.load (i32.add (local.get $w) (i32.shl (i32.add (i32.mul (local.get $j) (local.get $n)) (local.get $i)) (i32.const 3))))
            (i64.load offset=8 (local.get $c)) (i64.load offset=16 (local.get $c)) (local.get $q)))
          (local.set $v (f64.add (local.get $v) (f64.div (f64.convert_i64_u (local.get $u)) (f64.convert_i64_u (local.get $q)))))
          (local.set $ulo (i64.and (local.get $u) (i64.const 0xffffffff)))
          (local.set $uhi (i64.shr_u (local.get $u) (i64.const 32)))
          ;; acc += u (Q/q_j), limb by limb; products land split in 32-bit halves, so no limb overflows.
          (local.set $m (i32.const 0))
          (block $ml (loop $mloop
            (br_if $ml (i32.ge_u (local.get $m) (local.get $limbs)))
            (local.set $pm (i64.load (i32.add (local.get $p) (i32.shl (i32.add (i32.mul (local.get $j) (local.get $limbs)) (local.get $m)) (i32.const 3)))))
            (local.set $a (i32.add (local.get $acc) (i32.shl (local.get $m) (i32.const 3))))
            (local.set $prod (i64.mul (local.get $ulo) (local.get $pm)))
            (i64.store (local.get $a) (i64.add (i64.load (local.get $a)) (i64.and (local.get $prod) (i64.const 0xffffffff))))
            (if (i32.lt_u (i32.add (local.get $m) (i32.const 1)) (local.get $limbs)) (then
              (i64.store offset=8 (local.get $a) (i64.add (i64.load offset=8 (local.get $a)) (i64.shr_u (local.get $prod) (i64.const 32))))))
            (local.set $prod (i64.mul (local.get $uhi) (local.get $pm)))
            (if (i32.lt_u (i32.add (local.get $m) (i32.const 1)) (local.get $limbs)) (then
              (i64.store offset=8 (local.get $a) (i64.add (i64.load offset=8 (local.get $a)) (i64.and (local.get $prod) (i64.const 0xffffffff))))))
            (if (i32.lt_u (i32.add (local.get $m) (i32.const 2)) (local.get $limbs)) (then
              (i64.store offset=16 (local.get $a) (i64.add (i64.load offset=16 (local.get $a)) (i64.shr_u (local.get $prod) (i64.const 32))))))
            (local.set $m (i32.add (local.get $m) (i32.const 1)))
            (br $mloop)))
          (local.set $j (i32.add (local.get $j) (i32.const 1)))
          (br $pl)))
        ;; + (1 - K) Q, then carries; two limbs to each output word.
        (local.set $kk (i32.trunc_f64_u (f64.nearest (local.get $v))))
        (if (i32.gt_u (local.get $kk) (local.get $k)) (then (local.set $kk (local.get $k))))
        (local.set $carry (i64.const 0))
        (local.set $o (i32.add (local.get $out) (i32.mul (local.get $i) (i32.shl (local.get $limbs) (i32.const 2)))))
        (local.set $m (i32.const 0))
        (block $cl (loop $cloop
          (br_if $cl (i32.ge_u (local.get $m) (local.get $limbs)))
          (local.set $s (i64.add (i64.add (local.get $carry) (i64.load (i32.add (local.get $acc) (i32.shl (local.get $m) (i32.const 3)))))
            (i64.load (i32.add (local.get $t) (i32.shl (i32.add (i32.mul (local.get $kk) (local.get $limbs)) (local.get $m)) (i32.const 3))))))
          (i32.store (i32.add (local.get $o) (i32.shl (local.get $m) (i32.const 2))) (i32.wrap_i64 (local.get $s)))
          (local.set $carry (i64.shr_u (local.get $s) (i64.const 32)))
          (local.set $m (i32.add (local.get $m) (i32.const 1)))
          (br $cloop)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $coef))))

  ;; The first i whose words-word integer at $data lies outside [lo, hi] (at $lo, $hi), or -1.
  (func (export "outside") (param $data i32) (param $words i32) (param $n i32) (param $lo i32) (param $hi i32) (result i32)
    (local $i i32) (local $p i32)
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
        (local.set $p (i32.add (local.get $data) (i32.mul (local.get $i) (i32.shl (local.get $words) (i32.const 3)))))
        (if (i32.or (i32.lt_s (call $cmp (local.get $p) (local.get $lo) (local.get $words)) (i32.const 0))
                    (i32.gt_s (call $cmp (local.get $p) (local.get $hi) (local.get $words)) (i32.const 0)))
          (then (return (local.get $i))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
    (i32.const -1))

  ;; out[i] = a[i] + b[i] mod q for residues a[i], b[i] < q < 2^62 (the sum fits a word).
  (func (export "addmod") (param $a i32) (param $b i32) (param $n i32) (param $q i64) (param $out i32)
    (local $i i32) (local $p i32) (local $s i64)
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
        (local.set $p (i32.shl (local.get $i) (i32.const 3)))
        (local.set $s (i64.add (i64.load (i32.add (local.get $a) (local.get $p))) (i64.load (i32.add (local.get $b) (local.get $p)))))
        (i64.store (i32.add (local.get $out) (local.get $p)) (select (i64.sub (local.get $s) (local.get $q)) (local.get $s) (i64.ge_u (local.get $s) (local.get $q))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next))))

  ;; The first i < n with data[i] >= q (not a residue modulo q), or -1.
  (func (export "notbelow") (param $data i32) (param $n i32) (param $q i64) (result i32)
    (local $i i32)
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
        (if (i64.ge_u (i64.load (i32.add (local.get $data) (i32.shl (local.get $i) (i32.const 3)))) (local.get $q))
          (then (return (local.get $i))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
    (i32.const -1))

  ;; Compares the words-word integers at $a and $b: -1, 0 or 1.
  (func $cmp (param $a i32) (param $b i32) (param $words i32) (result i32)
    (local $k i32) (local $x i64) (local $y i64)
    (local.set $k (local.get $words))
    (block $done
      (loop $next
        (br_if $done (i32.eqz (local.get $k)))
        (local.set $k (i32.sub (local.get $k) (i32.const 1)))
        (local.set $x (i64.load (i32.add (local.get $a) (i32.shl (local.get $k) (i32.const 3)))))
        (local.set $y (i64.load (i32.add (local.get $b) (i32.shl (local.get $k) (i32.const 3)))))
        (br_if $next (i64.eq (local.get $x) (local.get $y)))
        (return (select (i32.const -1) (i32.const 1) (i64.lt_u (local.get $x) (local.get $y))))))
    (i32.const 0))
  )
