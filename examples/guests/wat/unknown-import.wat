;; Imports a host function no runtime provides.
(module
  (import "env" "launch_missiles" (func (param i32)))
  (func (export "_start")))
