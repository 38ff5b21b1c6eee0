//! The FHIRPath subset SQL on FHIR v2 needs, compiled once and evaluated per resource.
//!
//! [`parser`] turns text into an [`ast::Expr`]; [`compile`] turns that into a plan
//! ([`Expression`]) with constants inlined and functions resolved; [`eval`] runs the plan over
//! a parsed document (simd-json's tape, [`Json`](crate::view::Json)), producing
//! [`Collection`]s of [`Item`]s that borrow from it.
//!
//! ```
//! use fhirhouse::view::fhirpath::{CompileEnv, EvalContext, Expression, Item};
//! use fhirhouse::view::Json;
//! let mut line = br#"{"resourceType":"Patient","id":"p1","name":[{"family":"Smith","given":["Ann","B"]}]}"#.to_vec();
//! let tape = simd_json::to_tape(&mut line).unwrap();
//! let patient = Json::root(&tape);
//! let expr = Expression::compile("name.given.join(' ')", &CompileEnv::default()).unwrap();
//! let ctx = EvalContext::new(patient, 0);
//! let result = expr.evaluate(&ctx, &[Item::Node(patient)]).unwrap();
//! assert_eq!(result[0].as_str(), Some("Ann B"));
//! ```

pub mod ast;
pub mod choice;
pub mod compile;
pub mod eval;
pub mod navigate;
pub mod parser;
pub mod single;
pub mod value;

pub use compile::{CompileEnv, CompileError, Expression, Kind, Lit};
pub use eval::{EvalContext, EvalError};
pub use single::Found;
pub use value::{Collection, Item};
