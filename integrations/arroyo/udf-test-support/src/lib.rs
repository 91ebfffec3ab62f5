//! Calls a UDF the way Arroyo's host does: the argument columns exported through the Arrow C
//! data interface ([`FfiArrays`]), the `__run` entry point the `#[udf]` macro generates, and the
//! result column imported back from its FFI form.

use arroyo_udf_plugin::arrow::array::{make_array, Array, ArrayRef};
use arroyo_udf_plugin::arrow::ffi::from_ffi;
use arroyo_udf_plugin::{FfiArraySchema, FfiArrays, RunResult};

/// The signature of the `__run` symbol of a sync UDF.
pub type Run = extern "C-unwind" fn(FfiArrays) -> RunResult;

/// Runs `run` over the columns `args` (one row per element) and returns the result column.
///
/// # Panics
/// When the UDF reports an error (it panicked), or its result does not import.
pub fn call(run: Run, args: &[ArrayRef]) -> ArrayRef {
    let exported = FfiArrays::from_vec(args.iter().map(|column| column.to_data()).collect());
    match run(exported) {
        RunResult::Ok(FfiArraySchema(array, schema)) => {
            // SAFETY: `array` and `schema` were exported by the UDF through `to_ffi` and are
            // imported once, here.
            let data = unsafe { from_ffi(array, &schema) }.expect("the result column imports");
            make_array(data)
        }
        RunResult::Err => panic!("the UDF reported an error"),
    }
}
