;; Grows memory by 16 pages (1 MiB) at a time until memory.grow returns -1,
;; then exits with the number of MiB it got (proc_exit), so the limit is visible.
(module
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (memory (export "memory") 0)
  (func (export "_start")
    (local $mib i32)
    (block $refused
      (loop $grow
        (br_if $refused (i32.eq (memory.grow (i32.const 16)) (i32.const -1)))
        (local.set $mib (i32.add (local.get $mib) (i32.const 1)))
        (br_if $refused (i32.ge_u (local.get $mib) (i32.const 120)))
        (br $grow)))
    (call $proc_exit (local.get $mib))))
