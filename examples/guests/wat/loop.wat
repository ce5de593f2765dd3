;; A tight infinite loop that never calls the host: only epoch interruption stops it.
(module
  (func (export "_start")
    (loop $forever (br $forever))))
