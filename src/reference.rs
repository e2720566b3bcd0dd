//! The CPU reference (ndarray): forward, backward and SGD step. The executable spec of the math.
use crate::model::Mlp;
impl Mlp {}
