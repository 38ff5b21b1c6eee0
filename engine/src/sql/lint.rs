//! Statements that plan and run but answer another question than the one asked, refused
//! with what to write instead.
//!
//! DataFusion coerces a bare number compared with a date to a date: `birth_date > 1970`
//! compares with the 1970th day after 1970-01-01 (1975-05-24), and the query counts the
//! wrong patients without a word. PostgreSQL and DuckDB refuse that comparison; so does a
//! session here.

use arrow::datatypes::DataType;
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::common::DFSchema;
use datafusion::logical_expr::{BinaryExpr, Expr, ExprSchemable, LogicalPlan, Operator};

use super::diagnose::SqlError;

/// The first comparison in `plan` (subqueries included) of a date with a bare integer, as
/// an error that says how to compare with a year or a day.
pub(super) fn date_compared_with_number(plan: &LogicalPlan) -> Option<SqlError> {
    let mut found = None;
    let _ = plan.apply_with_subqueries(|node| {
        // A node's expressions name the columns of its inputs.
        let mut schema = DFSchema::empty();
        for input in node.inputs() {
            schema.merge(input.schema());
        }
        let _ = node.apply_expressions(|expr| {
            expr.apply(|e| {
                found = found.take().or_else(|| compared_date(e, &schema));
                Ok(if found.is_some() { TreeNodeRecursion::Stop } else { TreeNodeRecursion::Continue })
            })
        });
        Ok(if found.is_some() { TreeNodeRecursion::Stop } else { TreeNodeRecursion::Continue })
    });
    found
}

/// `e` as the error, when it compares a date-typed expression with an integer literal.
fn compared_date(e: &Expr, schema: &DFSchema) -> Option<SqlError> {
    let Expr::BinaryExpr(BinaryExpr { left, op, right }) = e else { return None };
    if !matches!(op, Operator::Eq | Operator::NotEq | Operator::Lt | Operator::LtEq | Operator::Gt | Operator::GtEq) {
        return None;
    }
    let (date, number) = [(left, right), (right, left)].into_iter().find_map(|(side, other)| {
        let Expr::Literal(value, _) = other.as_ref() else { return None };
        let is_date = matches!(side.get_type(schema), Ok(DataType::Date32 | DataType::Date64));
        (is_date && value.data_type().is_integer()).then(|| (side.to_string(), value.to_string()))
    })?;
    Some(SqlError {
        message: format!(
            "{date} is a date and {number} a number: DataFusion would compare with the day {number} days \
             after 1970-01-01"
        ),
        span: None,
        notes: vec![
            format!("for a year: date_part('year', {date}) {op} {number}"),
            format!("for a day: {date} {op} DATE 'YYYY-MM-DD'"),
        ],
    })
}
