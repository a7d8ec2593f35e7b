;; The smallest daskgate-abi/1 module: a bump allocator and an options
;; export that always answers {"config":{"worker_cores":2}}.
;; Built with: wat2wasm minimal.wat -o minimal.wasm   (make wasm-fixtures)
(module
  (memory (export "memory") 1)
  (global $next (mut i32) (i32.const 1024))
  (data (i32.const 0) "{\22config\22:{\22worker_cores\22:2}}")
  (func (export "daskgate_abi_version") (result i32) (i32.const 1))
  (func (export "daskgate_alloc") (param $n i32) (result i32)
    (local $p i32)
    (local.set $p (global.get $next))
    ;; reset when the page is nearly full: one call at a time per instance
    (if (i32.gt_u (i32.add (local.get $p) (local.get $n)) (i32.const 65536))
      (then (local.set $p (i32.const 1024))))
    (global.set $next (i32.add (local.get $p) (local.get $n)))
    (local.get $p))
  (func (export "daskgate_free") (param i32 i32)
    (global.set $next (i32.const 1024)))
  (func (export "options") (param i32 i32) (result i64)
    (i64.const 29)))
