;; A reactor-style module with plain exports, for `--invoke`.
(module
  (func (export "answer") (result i32) (i32.const 42))
  (func (export "add") (param i32 i32) (result i32)
    (i32.add (local.get 0) (local.get 1)))
  (global (export "counter") i32 (i32.const 0)))
