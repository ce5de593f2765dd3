//! Whether a component uses the component model's concurrency (WASI 0.3:
//! async functions, `stream`, `future`, `error-context`, the task and
//! waitable builtins), read from its bytes before anything compiles.
//!
//! A process has two engines (`crate::engine::EngineKind`): wasmtime's concurrency
//! support costs every store and every call, WASI 0.3 or not (an HTTP
//! request to a 0.2 proxy took ~35 µs more CPU with it on), so only the
//! programs that need it get the engine that has it. Core modules never do.
//!
//! The scan walks the component-level sections of the component and every
//! component nested in it (core modules are skipped unparsed, so an 18 MB
//! component costs microseconds): any canonical function beyond
//! lift/lower/resource ones, any `async` or `callback` canonical option,
//! and any type that is an async function, a `stream`, a `future` or an
//! `error-context` means the concurrent engine. These are exactly what
//! wasmparser refuses without its component-model-async features.

use wasmparser::{
    CanonicalFunction, CanonicalOption, Chunk, ComponentDefinedType, ComponentType, ComponentTypeDeclaration,
    ComponentValType, InstanceTypeDeclaration, Parser, Payload, PrimitiveValType,
};

/// Whether the component in `bytes` needs an engine with concurrency support.
pub(crate) fn component_uses_async(bytes: &[u8]) -> Result<bool, wasmparser::BinaryReaderError> {
    let mut parser = Parser::new(0);
    let mut rest = bytes;
    loop {
        let Chunk::Parsed { consumed, payload } = parser.parse(rest, true)? else {
            return Ok(false); // not reachable with eof = true
        };
        rest = rest.get(consumed..).unwrap_or_default();
        match payload {
            Payload::ModuleSection { unchecked_range, .. } => {
                rest = rest.get(unchecked_range.len()..).unwrap_or_default();
            }
            Payload::ComponentSection { unchecked_range, .. } => {
                let nested = rest.get(..unchecked_range.len()).unwrap_or_default();
                if component_uses_async(nested)? {
                    return Ok(true);
                }
                rest = rest.get(unchecked_range.len()..).unwrap_or_default();
            }
            Payload::ComponentCanonicalSection(functions) => {
                for function in functions {
                    if canonical_is_async(&function?) {
                        return Ok(true);
                    }
                }
            }
            Payload::ComponentTypeSection(types) => {
                for ty in types {
                    if type_is_async(&ty?) {
                        return Ok(true);
                    }
                }
            }
            Payload::End(_) => return Ok(false),
            _ => {}
        }
    }
}

fn canonical_is_async(function: &CanonicalFunction) -> bool {
    let async_option = |options: &[CanonicalOption]| {
        options.iter().any(|o| matches!(o, CanonicalOption::Async | CanonicalOption::Callback(_)))
    };
    match function {
        CanonicalFunction::Lift { options, .. } | CanonicalFunction::Lower { options, .. } => async_option(options),
        CanonicalFunction::ResourceNew { .. }
        | CanonicalFunction::ResourceDrop { .. }
        | CanonicalFunction::ResourceRep { .. } => false,
        // task.*, waitable-set.*, stream.*, future.*, error-context.*,
        // subtask.*, context.*, backpressure, threads: all concurrency.
        _ => true,
    }
}

fn type_is_async(ty: &ComponentType) -> bool {
    match ty {
        ComponentType::Defined(defined) => defined_is_async(defined),
        ComponentType::Func(func) => {
            func.async_
                || func.params.iter().any(|(_, ty)| value_is_async(ty))
                || func.result.as_ref().is_some_and(value_is_async)
        }
        ComponentType::Component(declarations) => declarations.iter().any(|d| match d {
            ComponentTypeDeclaration::Type(ty) => type_is_async(ty),
            _ => false,
        }),
        ComponentType::Instance(declarations) => declarations.iter().any(|d| match d {
            InstanceTypeDeclaration::Type(ty) => type_is_async(ty),
            _ => false,
        }),
        ComponentType::Resource { .. } => false,
    }
}

fn defined_is_async(defined: &ComponentDefinedType) -> bool {
    use ComponentDefinedType as D;
    match defined {
        D::Future(_) | D::Stream(_) => true,
        D::Primitive(primitive) => *primitive == PrimitiveValType::ErrorContext,
        D::Record(fields) => fields.iter().any(|(_, ty)| value_is_async(ty)),
        D::Variant(cases) => cases.iter().any(|case| case.ty.as_ref().is_some_and(value_is_async)),
        D::List(ty) | D::FixedLengthList(ty, _) | D::Option(ty) => value_is_async(ty),
        D::Map(key, value) => value_is_async(key) || value_is_async(value),
        D::Tuple(types) => types.iter().any(value_is_async),
        D::Result { ok, err } => ok.as_ref().is_some_and(value_is_async) || err.as_ref().is_some_and(value_is_async),
        D::Flags(_) | D::Enum(_) | D::Own(_) | D::Borrow(_) => false,
    }
}

/// A value type is a primitive or an index of a type the scan sees itself.
fn value_is_async(ty: &ComponentValType) -> bool {
    matches!(ty, ComponentValType::Primitive(PrimitiveValType::ErrorContext))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uses_async(wat: &str) -> bool {
        component_uses_async(&wat::parse_str(wat).unwrap()).unwrap()
    }

    #[test]
    fn plain_components_do_not_need_concurrency() {
        assert!(!uses_async(
            r#"(component
                (core module $m (func (export "f")))
                (core instance $i (instantiate $m))
                (func $f (canon lift (core func $i "f")))
                (instance $run (export "run" (func $f)))
                (export "wasi:cli/run@0.2.6" (instance $run)))"#
        ));
        assert!(!uses_async(r#"(component (type (record (field "a" u32))) (type (list string)))"#));
    }

    #[test]
    fn async_lifts_builtins_and_types_need_it_even_when_nested() {
        assert!(uses_async(
            r#"(component
                (core module $m (func (export "f") (result i32) i32.const 0) (func (export "cb") (param i32 i32 i32) (result i32) i32.const 0))
                (core instance $i (instantiate $m))
                (func $f (canon lift (core func $i "f") async (callback (func $i "cb"))))
                (export "f" (func $f)))"#
        ));
        assert!(uses_async(r#"(component (component (type (stream u8))))"#));
        assert!(uses_async(r#"(component (type (future)))"#));
        assert!(uses_async(r#"(component (type (instance (type (func async)))))"#));
        assert!(uses_async(r#"(component (type (list error-context)))"#));
        assert!(uses_async(r#"(component (core func (canon waitable-set.new)))"#));
    }
}
