//! `now`: the box's clock (epoch seconds). Every age is measured with it.

use crate::probe::frames::Frame;

pub fn parse(f: &Frame) -> Option<i64> {
    f.get_num::<i64>("now")
}
