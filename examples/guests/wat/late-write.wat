;; Sleeps one second (poll_oneoff), then writes "late\n" to stdout and exits
;; with fd_write's errno (0 when the write worked, 64 for EPIPE): how a guest
;; whose client went away (`ctr run -d`) sees its stdout.
(module
  (import "wasi_snapshot_preview1" "poll_oneoff"
    (func $poll_oneoff (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (memory (export "memory") 1)
  (data (i32.const 256) "late\n")
  (func (export "_start")
    ;; subscription at 0: clock, monotonic, 1 s relative
    (i32.store8 (i32.const 8) (i32.const 0))
    (i32.store (i32.const 16) (i32.const 1))
    (i64.store (i32.const 24) (i64.const 1000000000))
    (drop (call $poll_oneoff (i32.const 0) (i32.const 64) (i32.const 1) (i32.const 128)))
    ;; one iovec at 192: {256, 5}
    (i32.store (i32.const 192) (i32.const 256))
    (i32.store (i32.const 196) (i32.const 5))
    (call $proc_exit (call $fd_write (i32.const 1) (i32.const 192) (i32.const 1) (i32.const 200)))))
