//! A ViewDefinition compiled into a select tree, and the spec's row algorithm over it.
//!
//! [`CompiledView::compile`] validates everything that can be validated without data (every
//! FHIRPath parses and compiles, constants exist, `where` paths can be boolean, `unionAll`
//! branches agree on their columns, column names are unique, column types map to Arrow) and
//! assigns each column a slot in the output row.
//!
//! [`CompiledView::rows`] is the algorithm of the SQL on FHIR specification ("Processing
//! Algorithm"), kept in the same shape as the reference implementation: a select element
//! produces one set of rows per focus item (`forEach`, `forEachOrNull`, `repeat` choose the
//! items), its own columns form one partial row, nested `select`s are cross-joined with it,
//! and `unionAll` branches are concatenated and then cross-joined.

use std::collections::HashMap;
use std::sync::Arc;

use super::json::Json;
use arrow::datatypes::{Schema, SchemaRef};

use super::batch::RowError;
use super::decimal::Decimal;
use super::definition::{ColumnDef, ConstantDef, Iteration, SelectDef, ViewDefinition};
use super::fhirpath::compile::bind_root;
use super::fhirpath::navigate::{RootIndex, RootSlots};
use super::fhirpath::parser::parse;
use super::fhirpath::{Collection, CompileEnv, EvalContext, Expression, Found, Item, Kind, Lit};
use super::temporal::Temporal;
use super::types::{Cell, FhirInteger, ValueType};

/// The most items one `repeat` may reach in one resource: past it the resource is a row error
/// (a path that reaches its own input would repeat for ever).
pub const MAX_REPEAT_ITEMS: usize = 1_000_000;

/// A ViewDefinition that cannot be used, with the element it is about.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{message}", if location.is_empty() { String::new() } else { format!("{location}: ") })]
pub struct ViewError {
    /// The element path, e.g. `select[0].column[1].path`; empty for the whole view.
    pub location: String,
    /// What is wrong and, where possible, how to fix it.
    pub message: String,
}

impl ViewError {
    /// An error about the element at `location`.
    pub fn at(location: &str, message: impl Into<String>) -> ViewError {
        ViewError { location: location.to_string(), message: message.into() }
    }
}

/// One output column.
#[derive(Debug, Clone)]
pub struct ColumnPlan {
    /// Output column name.
    pub name: String,
    /// Arrow representation of each value.
    pub value_type: ValueType,
    /// Whether the column is a list.
    pub collection: bool,
    /// Where the column is defined, for error messages.
    pub location: String,
}

/// A column as evaluated inside a select element.
#[derive(Debug, Clone)]
pub(crate) struct ColumnEval {
    /// The column's index in the output row (and schema).
    pub(crate) slot: usize,
    /// Its path.
    pub(crate) expr: Expression,
}

#[derive(Debug, Clone)]
enum IterationPlan {
    None,
    ForEach(Expression),
    ForEachOrNull(Expression),
    Repeat(Vec<Expression>),
}

/// A view whose rows are one per item of a single `forEach`: see
/// [`CompiledView::for_each_shape`].
pub(crate) struct ForEachShape<'v> {
    /// The root's columns: evaluated at the resource, the same on each of its rows.
    pub shared: &'v [ColumnEval],
    /// The `forEach` (or `forEachOrNull`) path.
    pub path: &'v Expression,
    /// Whether a resource where the path finds nothing still has one row (of nulls).
    pub or_null: bool,
    /// The iterating element's columns, evaluated at each item.
    pub columns: &'v [ColumnEval],
}

#[derive(Debug, Clone)]
struct SelectPlan {
    iteration: IterationPlan,
    columns: Vec<ColumnEval>,
    selects: Vec<SelectPlan>,
    union_all: Vec<SelectPlan>,
}

/// A ViewDefinition ready to run: validated, with every FHIRPath compiled once.
///
/// ```
/// use fhirhouse::view::{CompiledView, Json};
/// let view = CompiledView::from_json_str(r#"{
///   "resource": "Patient", "name": "patient",
///   "select": [{"column": [{"name": "id", "path": "getResourceKey()"},
///                          {"name": "family", "path": "name.family.first()", "type": "string"}]}]
/// }"#).unwrap();
/// let mut line = br#"{"resourceType":"Patient","id":"p1","name":[{"family":"Smith"}]}"#.to_vec();
/// let tape = simd_json::to_tape(&mut line).unwrap();
/// let rows = view.rows(Json::root(&tape)).unwrap();
/// assert_eq!(rows.len(), 1);
/// assert_eq!(view.schema().field(1).name(), "family");
/// ```
#[derive(Debug, Clone)]
pub struct CompiledView {
    name: String,
    resource_type: String,
    definition: serde_json::Value,
    wheres: Vec<Expression>,
    root: SelectPlan,
    /// Root elements read by expressions evaluated on the resource itself, prefetched once
    /// per resource.
    root_index: RootIndex,
    columns: Vec<ColumnPlan>,
    schema: SchemaRef,
}

/// One output row: a cell per column, in schema order.
pub type Row<'a> = Vec<Cell<'a>>;

impl CompiledView {
    /// Compiles a ViewDefinition given as JSON text. A leading byte order mark (what
    /// Windows editors save UTF-8 with) is skipped, as the JSON parser would refuse it.
    pub fn from_json_str(text: &str) -> Result<CompiledView, ViewError> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let json: serde_json::Value =
            serde_json::from_str(text).map_err(|e| ViewError::at("", format!("not valid JSON: {e}")))?;
        CompiledView::from_json_value(&json)
    }

    /// Compiles a ViewDefinition given as a JSON value.
    pub fn from_json_value(json: &serde_json::Value) -> Result<CompiledView, ViewError> {
        let definition = ViewDefinition::from_json(json)?;
        let mut view = CompiledView::compile(&definition)?;
        view.definition = json.clone();
        Ok(view)
    }

    /// Compiles a loaded ViewDefinition.
    pub fn compile(def: &ViewDefinition) -> Result<CompiledView, ViewError> {
        let env =
            CompileEnv { constants: def.constants.iter().map(constant_value).collect::<Result<HashMap<_, _>, _>>()? };
        let mut wheres = Vec::new();
        for (i, path) in def.where_paths.iter().enumerate() {
            let loc = format!("where[{i}].path");
            let expr = Expression::compile(path, &env).map_err(|e| ViewError::at(&loc, e.0))?;
            if !matches!(expr.kind, Kind::Boolean | Kind::Unknown) {
                let kind = format!("{:?}", expr.kind).to_lowercase();
                return Err(ViewError::at(
                    &loc,
                    format!("'{path}' returns {kind} values, but a where path must return a boolean"),
                ));
            }
            wheres.push(expr);
        }
        let long_constants =
            def.constants.iter().filter(|c| c.value_type == "Integer64").map(|c| c.name.clone()).collect();
        let mut compiler = TreeCompiler { env: &env, columns: Vec::new(), long_constants, type_sources: Vec::new() };
        let root_def = SelectDef {
            location: String::new(),
            column: vec![],
            select: def.select.clone(),
            iteration: Iteration::None,
            union_all: vec![],
        };
        let mut root = compiler.select(&root_def, None)?;
        root.flatten();
        let mut root_index = RootIndex::default();
        root.bind_root(&mut root_index);
        for expr in &mut wheres {
            bind_root(&mut expr.op, &mut root_index);
        }
        let columns = compiler.columns;
        let schema = Arc::new(Schema::new(
            columns.iter().map(|c| c.value_type.field(&c.name, c.collection)).collect::<Vec<_>>(),
        ));
        let name = def.name.clone().unwrap_or_else(|| def.resource.to_ascii_lowercase());
        Ok(CompiledView {
            name,
            resource_type: def.resource.clone(),
            definition: serde_json::Value::Null,
            wheres,
            root,
            root_index,
            columns,
            schema,
        })
    }

    /// The table name: the view's `name`, or its resource type in lower case.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The FHIR resource type the view reads.
    pub fn resource_type(&self) -> &str {
        &self.resource_type
    }

    /// The Arrow schema of the rows.
    pub fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    /// The output columns, in schema order.
    pub fn columns(&self) -> &[ColumnPlan] {
        &self.columns
    }

    /// The ViewDefinition JSON the view was compiled from (null when built from a struct).
    pub fn definition(&self) -> &serde_json::Value {
        &self.definition
    }

    /// Evaluates the view over one resource. A resource of another type, or one that a
    /// `where` path filters out, yields no rows. Any error leaves no partial rows.
    pub fn rows<'a>(&'a self, resource: Json<'a>) -> Result<Vec<Row<'a>>, RowError> {
        let mut root_slots = RootSlots::new();
        let Some(ctx) = self.start(resource, &mut root_slots)? else { return Ok(Vec::new()) };
        self.select_rows(&self.root, &ctx, &Item::Node(resource))
    }

    /// What every evaluation of a resource begins with: checks its type and the `where`
    /// paths and fills the root prefetch. `None` when the resource yields no rows.
    pub(crate) fn start<'c, 'a>(
        &'a self,
        resource: Json<'a>,
        root_slots: &'c mut RootSlots<'a>,
    ) -> Result<Option<EvalContext<'c, 'a>>, RowError> {
        let root = Item::Node(resource);
        let is_ours = resource.get_str("resourceType") == Some(self.resource_type.as_str());
        if !is_ours {
            return Ok(None);
        }
        self.root_index.prefetch(resource, root_slots);
        let ctx = EvalContext { resource, row_index: 0, root: root_slots };
        for (i, expr) in self.wheres.iter().enumerate() {
            let result = expr.evaluate_at(&ctx, &root).map_err(|e| self.error(resource, None, e.0))?;
            let keep = match result.as_slice() {
                [] => false,
                [item] => item.as_bool().ok_or_else(|| {
                    self.error(
                        resource,
                        None,
                        format!(
                            "where[{i}].path '{}' returned {}, not a boolean",
                            expr.source,
                            with_article(item.kind_name())
                        ),
                    )
                })?,
                many => {
                    return Err(self.error(
                        resource,
                        None,
                        format!("where[{i}].path '{}' returned {} values, not one boolean", expr.source, many.len()),
                    ))
                }
            };
            if !keep {
                return Ok(None);
            }
        }
        Ok(Some(ctx))
    }

    /// The columns, when the view yields exactly one row per resource it keeps: its select
    /// tree is one element of columns (nested non-iterating selects merged in), with no
    /// `forEach`, `repeat` or `unionAll`. Such a row can go straight to the builders.
    pub(crate) fn one_row_columns(&self) -> Option<&[ColumnEval]> {
        let root = &self.root;
        (matches!(root.iteration, IterationPlan::None) && root.selects.is_empty() && root.union_all.is_empty())
            .then_some(&root.columns[..])
    }

    /// The shape of most `forEach` views: one row per item of a single `forEach` (or
    /// `forEachOrNull`), each row the root's columns (the same for every item) beside the
    /// iterating element's columns at the item. The root has no `unionAll`, and the
    /// iterating element is its only nested select (non-iterating ones are merged into the
    /// root), with nothing nested in it. Such rows can go straight to the builders too.
    pub(crate) fn for_each_shape(&self) -> Option<ForEachShape<'_>> {
        let root = &self.root;
        let [each] = &root.selects[..] else { return None };
        if !matches!(root.iteration, IterationPlan::None)
            || !root.union_all.is_empty()
            || !each.selects.is_empty()
            || !each.union_all.is_empty()
        {
            return None;
        }
        let (path, or_null) = match &each.iteration {
            IterationPlan::ForEach(path) => (path, false),
            IterationPlan::ForEachOrNull(path) => (path, true),
            _ => return None,
        };
        Some(ForEachShape { shared: &root.columns, path, or_null, columns: &each.columns })
    }

    /// The items a `forEach` path finds at `focus`.
    pub(crate) fn for_each_items<'a>(
        &'a self,
        path: &'a Expression,
        ctx: &EvalContext<'_, 'a>,
        focus: &Item<'a>,
    ) -> Result<Collection<'a>, RowError> {
        path.evaluate(ctx, std::slice::from_ref(focus)).map_err(|err| self.error(ctx.resource, None, err.0))
    }

    /// Rows of one select element for one parent focus: chooses the focus items, then
    /// builds rows at each.
    fn select_rows<'a>(
        &'a self,
        node: &'a SelectPlan,
        ctx: &EvalContext<'_, 'a>,
        focus: &Item<'a>,
    ) -> Result<Vec<Row<'a>>, RowError> {
        let items = match &node.iteration {
            IterationPlan::None => return self.rows_at(node, ctx, focus),
            IterationPlan::ForEach(e) | IterationPlan::ForEachOrNull(e) => self.for_each_items(e, ctx, focus)?,
            IterationPlan::Repeat(paths) => {
                let mut found = Vec::new();
                self.repeat(paths, ctx, focus, &mut found)?;
                found.into_iter().collect()
            }
        };
        if items.is_empty() {
            return match node.iteration {
                IterationPlan::ForEachOrNull(_) => self.null_row(node, ctx),
                _ => Ok(Vec::new()),
            };
        }
        let mut rows = Vec::new();
        for (i, item) in items.iter().enumerate() {
            rows.extend(self.rows_at(node, &EvalContext { row_index: i as i64, ..*ctx }, item)?);
        }
        Ok(rows)
    }

    /// The single row `forEachOrNull` emits when it finds nothing: its columns evaluated over
    /// an empty focus (so paths are null and `%rowIndex` is 0), nested elements all null.
    fn null_row<'a>(&'a self, node: &'a SelectPlan, ctx: &EvalContext<'_, 'a>) -> Result<Vec<Row<'a>>, RowError> {
        let ctx = EvalContext { row_index: 0, ..*ctx };
        let mut row = self.empty_row();
        for column in &node.columns {
            row[column.slot] = self.cell(column, &ctx, &[])?;
        }
        Ok(vec![row])
    }

    /// `repeat`: every node reachable by applying the paths again and again, depth first
    /// (a node, then all that is reached from it, then its next sibling).
    ///
    /// Walked with a stack of its own, not by recursion: a resource nests as deep as its
    /// author likes (a QuestionnaireResponse 50,000 items deep is a 1.4 MB line), and a
    /// recursion that deep overflows the worker's stack and aborts the whole load. A path
    /// that reaches its own input (`repeat: ["$this"]`) would never end: past
    /// [`MAX_REPEAT_ITEMS`] items the resource is a row error.
    fn repeat<'a>(
        &'a self,
        paths: &'a [Expression],
        ctx: &EvalContext<'_, 'a>,
        from: &Item<'a>,
        out: &mut Vec<Item<'a>>,
    ) -> Result<(), RowError> {
        let children = |item: &Item<'a>| -> Result<Vec<Item<'a>>, RowError> {
            let mut found = Vec::new();
            for path in paths {
                let reached =
                    path.evaluate(ctx, std::slice::from_ref(item)).map_err(|e| self.error(ctx.resource, None, e.0))?;
                found.extend(reached.iter().cloned());
            }
            Ok(found)
        };
        // Next to visit on top: children go on in reverse, so the first comes off first.
        let mut pending: Vec<Item<'a>> = children(from)?;
        pending.reverse();
        while let Some(item) = pending.pop() {
            if out.len() >= MAX_REPEAT_ITEMS {
                let why =
                    format!("repeat reached more than {MAX_REPEAT_ITEMS} items (does a path return its own input?)");
                return Err(self.error(ctx.resource, None, why));
            }
            let mut next = children(&item)?;
            out.push(item);
            next.reverse();
            pending.append(&mut next);
        }
        Ok(())
    }

    /// Rows of one select element at one focus item: its columns × each nested select ×
    /// the concatenated unionAll branches. The nested elements are evaluated first, in
    /// order, and as soon as one yields no rows the element yields none: the elements after
    /// it and the element's own columns are not evaluated (nor their errors reported), as
    /// for a resource that a `where` leaves out.
    fn rows_at<'a>(
        &'a self,
        node: &'a SelectPlan,
        ctx: &EvalContext<'_, 'a>,
        focus: &Item<'a>,
    ) -> Result<Vec<Row<'a>>, RowError> {
        let mut nested = Vec::with_capacity(node.selects.len() + 1);
        for select in &node.selects {
            let rows = self.select_rows(select, ctx, focus)?;
            if rows.is_empty() {
                return Ok(Vec::new());
            }
            nested.push(rows);
        }
        if !node.union_all.is_empty() {
            let mut branches = Vec::new();
            for branch in &node.union_all {
                branches.extend(self.select_rows(branch, ctx, focus)?);
            }
            if branches.is_empty() {
                return Ok(Vec::new());
            }
            nested.push(branches);
        }
        let mut row = self.empty_row();
        for column in &node.columns {
            row[column.slot] = self.cell(column, ctx, std::slice::from_ref(focus))?;
        }
        Ok(nested.into_iter().fold(vec![row], |rows, nested| cross_join(&rows, nested)))
    }

    /// One column's value at `focus` (none for `forEachOrNull`'s empty row), converted to
    /// its type.
    pub(crate) fn cell<'a>(
        &'a self,
        column: &'a ColumnEval,
        ctx: &EvalContext<'_, 'a>,
        focus: &[Item<'a>],
    ) -> Result<Cell<'a>, RowError> {
        // The commonest shapes need no evaluator (see `single_item_at`).
        let single = match focus {
            [one] => column.expr.single_item_at(ctx, one),
            _ => None,
        };
        let (plan, found) = match single {
            Some(item) => (&self.columns[column.slot], Found::One(item)),
            None => self.column_value(column, ctx, focus)?,
        };
        let convert =
            |item: Item<'a>| plan.value_type.convert(item).map_err(|e| self.error(ctx.resource, Some(plan), e));
        if plan.collection {
            return Ok(Cell::List(found.into_collection().into_iter().map(convert).collect::<Result<_, _>>()?));
        }
        found.into_single().map_or(Ok(Cell::Null), convert)
    }

    /// A column's items for one row, unconverted, by the general route (callers try
    /// [`Expression::single_item_at`] first); several items in a column that is not a
    /// collection are an error. Returns the column's plan beside them.
    pub(crate) fn column_value<'a>(
        &'a self,
        column: &'a ColumnEval,
        ctx: &EvalContext<'_, 'a>,
        focus: &[Item<'a>],
    ) -> Result<(&'a ColumnPlan, Found<'a>), RowError> {
        let plan = &self.columns[column.slot];
        let found = match focus {
            [one] => column.expr.evaluate_at(ctx, one),
            _ => column.expr.evaluate(ctx, focus).map(Found::Many),
        }
        .map_err(|e| self.error(ctx.resource, Some(plan), e.0))?;
        match found.as_slice().len() {
            many if many > 1 && !plan.collection => Err(self.error(
                ctx.resource,
                Some(plan),
                format!("'{}' returned {many} values for one row; declare the column \"collection\": true or narrow the path (e.g. with first())", column.expr.source),
            )),
            _ => Ok((plan, found)),
        }
    }

    fn empty_row<'a>(&self) -> Row<'a> {
        vec![Cell::Null; self.columns.len()]
    }

    /// A row error about `resource`, and `column` when given.
    pub(crate) fn error(&self, resource: Json<'_>, column: Option<&ColumnPlan>, message: String) -> RowError {
        let id = resource.get_str("id").unwrap_or("(no id)");
        RowError {
            resource: format!("{}/{id}", self.resource_type),
            view: self.name.clone(),
            column: column.map(|c| c.name.clone()),
            message,
        }
    }
}

/// `an integer`, `an object`, `a string`: a kind name with its indefinite article.
fn with_article(kind: &str) -> String {
    let article = if kind.starts_with(['a', 'e', 'i', 'o', 'u']) { "an" } else { "a" };
    format!("{article} {kind}")
}

/// Every left row combined with every right row (the slots they fill are disjoint).
fn cross_join<'a>(left: &[Row<'a>], right: Vec<Row<'a>>) -> Vec<Row<'a>> {
    if let [only] = left {
        // The common case: one parent row; fill it in instead of copying.
        return right
            .into_iter()
            .map(|mut r| {
                for (cell, parent) in r.iter_mut().zip(only) {
                    if *cell == Cell::Null {
                        *cell = parent.clone();
                    }
                }
                r
            })
            .collect();
    }
    let mut out = Vec::with_capacity(left.len() * right.len());
    for l in left {
        for r in &right {
            out.push(l.iter().zip(r).map(|(a, b)| if *b == Cell::Null { a.clone() } else { b.clone() }).collect());
        }
    }
    out
}

fn constant_value(c: &ConstantDef) -> Result<(String, Lit), ViewError> {
    use serde_json::Value;
    let loc = format!("constant %{}", c.name);
    let bad = || ViewError::at(&loc, format!("value{} {} is not a valid {}", c.value_type, c.value, c.value_type));
    let lit = match (c.value_type.as_str(), &c.value) {
        ("Boolean", Value::Bool(b)) => Lit::Bool(*b),
        ("Integer64", Value::Number(n)) => Lit::Int(n.as_i64().ok_or_else(bad)?),
        ("Integer" | "PositiveInt" | "UnsignedInt", Value::Number(n)) => {
            // FHIR's 32-bit integers, from the least each type allows.
            let least = match c.value_type.as_str() {
                "PositiveInt" => 1,
                "UnsignedInt" => 0,
                _ => i32::MIN.into(),
            };
            Lit::Int(n.as_i64().filter(|n| (least..=i32::MAX.into()).contains(n)).ok_or_else(bad)?)
        }
        ("Integer64", Value::String(s)) => Lit::Int(s.parse().map_err(|_| bad())?),
        ("Decimal", Value::Number(n)) => Lit::Dec(Decimal::parse(&n.to_string()).ok_or_else(bad)?),
        // Temporal constants are compared as what they denote, so text that is no date
        // would compare as text, silently.
        ("Date", Value::String(s)) if Temporal::parse_date(s).is_some() => Lit::Date(s.clone()),
        ("DateTime" | "Instant", Value::String(s)) if Temporal::parse_datetime(s).is_some() => Lit::DateTime(s.clone()),
        ("Time", Value::String(s)) if Temporal::parse_time(s).is_some() => Lit::Time(s.clone()),
        (
            "Base64Binary" | "Canonical" | "Code" | "Id" | "Oid" | "String" | "Uri" | "Url" | "Uuid" | "Markdown",
            Value::String(s),
        ) => Lit::Str(s.clone()),
        (
            "Boolean" | "Integer" | "PositiveInt" | "UnsignedInt" | "Integer64" | "Decimal" | "Date" | "DateTime"
            | "Instant" | "Time",
            _,
        ) => return Err(bad()),
        ("Base64Binary" | "Canonical" | "Code" | "Id" | "Oid" | "String" | "Uri" | "Url" | "Uuid" | "Markdown", _) => {
            return Err(bad())
        }
        (other, _) => return Err(ViewError::at(&loc, format!("value{other} is not a supported constant type"))),
    };
    Ok((c.name.clone(), lit))
}

/// Walks the select tree once, compiling paths and assigning column slots.
struct TreeCompiler<'e> {
    env: &'e CompileEnv,
    columns: Vec<ColumnPlan>,
    /// The names of `valueInteger64` constants, whose values an untyped column holds as
    /// Int64.
    long_constants: Vec<String>,
    /// How each column's type came about, by slot, for `unionAll` mismatch errors.
    type_sources: Vec<String>,
}

impl TreeCompiler<'_> {
    /// Compiles a select element. `slots`, when given, is the list of slots a `unionAll`
    /// branch must fill in order (the first branch's columns); otherwise new slots are made.
    fn select(
        &mut self,
        def: &SelectDef,
        mut slots: Option<&mut std::slice::Iter<'_, usize>>,
    ) -> Result<SelectPlan, ViewError> {
        let compile =
            |path: &str, loc: String| Expression::compile(path, self.env).map_err(|e| ViewError::at(&loc, e.0));
        let iteration = match &def.iteration {
            Iteration::None => IterationPlan::None,
            Iteration::ForEach(p) => IterationPlan::ForEach(compile(p, format!("{}.forEach", def.location))?),
            Iteration::ForEachOrNull(p) => {
                IterationPlan::ForEachOrNull(compile(p, format!("{}.forEachOrNull", def.location))?)
            }
            Iteration::Repeat(ps) => IterationPlan::Repeat(
                ps.iter()
                    .enumerate()
                    .map(|(i, p)| compile(p, format!("{}.repeat[{i}]", def.location)))
                    .collect::<Result<_, _>>()?,
            ),
        };
        let mut columns = Vec::new();
        for col in &def.column {
            let expr = compile(&col.path, format!("{}.path", col.location))?;
            let slot = match slots.as_mut() {
                Some(slots) => self.reuse_slot(slots, col, &expr)?,
                None => self.new_slot(col, &expr)?,
            };
            columns.push(ColumnEval { slot, expr });
        }
        let mut selects = Vec::new();
        for nested in &def.select {
            selects.push(self.select(nested, slots.as_deref_mut())?);
        }
        let mut union_all = Vec::new();
        if let Some((first, rest)) = def.union_all.split_first() {
            let first = self.select(first, slots)?;
            let branch_slots = collect_slots(&first);
            union_all.push(first);
            for branch in rest {
                let mut iter = branch_slots.iter();
                union_all.push(self.select(branch, Some(&mut iter))?);
                if let Some(&missing) = iter.next() {
                    return Err(ViewError::at(
                        &branch.location,
                        format!(
                            "unionAll branches must have the same columns in the same order; this branch lacks '{}'",
                            self.columns[missing].name
                        ),
                    ));
                }
            }
        }
        Ok(SelectPlan { iteration, columns, selects, union_all })
    }

    /// A column's Arrow type, and how it came about in words: its `ansi/type` tag, its
    /// declared `type`, or the type inferred from its path.
    fn column_type(&self, col: &ColumnDef, expr: &Expression) -> Result<(ValueType, String), ViewError> {
        let ansi = col.tags.iter().find(|(n, _)| n == "ansi/type").map(|(_, v)| v.as_str());
        let mut value_type = ValueType::for_column(col.type_name.as_deref(), expr.kind, ansi)
            .map_err(|e| ViewError::at(&col.location, e))?;
        if value_type == ValueType::Int32(FhirInteger::Integer) && ansi.is_none() && col.type_name.is_none() {
            // The static kind says "integer" without a width; an integer64 constant in the
            // path makes it a 64-bit one. The path compiled, so it parses.
            let is_long = |name: &str| self.long_constants.iter().any(|c| c == name);
            if parse(&col.path).is_ok_and(|ast| ast.is_integer64(&is_long)) {
                value_type = ValueType::Int64(FhirInteger::Integer);
            }
        }
        let source = match (ansi, &col.type_name) {
            (Some(tag), _) => format!("ansi/type {tag}"),
            (None, Some(t)) => t.clone(),
            (None, None) => format!("untyped (inferred as {})", value_type.data_type()),
        };
        Ok((value_type, source))
    }

    fn new_slot(&mut self, col: &ColumnDef, expr: &Expression) -> Result<usize, ViewError> {
        // Ignoring case: SQL folds unquoted names, so `select Gender` would read `gender`.
        if let Some(existing) = self.columns.iter().find(|c| c.name.eq_ignore_ascii_case(&col.name)) {
            let case = if existing.name == col.name { String::new() } else { format!(" as '{}'", existing.name) };
            return Err(ViewError::at(
                &format!("{}.name", col.location),
                format!(
                    "column '{}' is already defined{case} at {} (names ignore case in SQL)",
                    col.name, existing.location
                ),
            ));
        }
        let (value_type, source) = self.column_type(col, expr)?;
        self.type_sources.push(source);
        self.columns.push(ColumnPlan {
            name: col.name.clone(),
            value_type,
            collection: col.collection,
            location: col.location.clone(),
        });
        Ok(self.columns.len() - 1)
    }

    /// The slot of the next column a `unionAll` branch must match, once `col` is checked
    /// against it: the spec requires every branch to "produce the same column names and
    /// types", and a value of another type would only fail (or be turned into text) per row.
    fn reuse_slot(
        &self,
        slots: &mut std::slice::Iter<'_, usize>,
        col: &ColumnDef,
        expr: &Expression,
    ) -> Result<usize, ViewError> {
        let mismatch = |expected: &str| {
            ViewError::at(
                &format!("{}.name", col.location),
                format!(
                    "unionAll branches must have the same columns in the same order; expected '{expected}', found '{}'",
                    col.name
                ),
            )
        };
        match slots.next() {
            Some(&slot) if self.columns[slot].name == col.name => {
                let first = &self.columns[slot];
                let (value_type, source) = self.column_type(col, expr)?;
                if value_type != first.value_type || col.collection != first.collection {
                    let shape = |source: &str, collection: bool| {
                        if collection {
                            format!("a collection of {source}")
                        } else {
                            source.to_string()
                        }
                    };
                    let location = match col.type_name {
                        Some(_) => format!("{}.type", col.location),
                        None => col.location.clone(),
                    };
                    return Err(ViewError::at(
                        &location,
                        format!(
                            "unionAll branches must have the same column types; '{}' is {} at {} but {} here",
                            col.name,
                            shape(&self.type_sources[slot], first.collection),
                            first.location,
                            shape(&source, col.collection),
                        ),
                    ));
                }
                Ok(slot)
            }
            Some(&slot) => Err(mismatch(&self.columns[slot].name)),
            None => Err(mismatch("no further column")),
        }
    }
}

impl SelectPlan {
    /// Binds the expressions this (top-level) element evaluates on the resource itself to
    /// the root prefetch: its columns and its nested elements' `forEach` paths.
    fn bind_root(&mut self, index: &mut RootIndex) {
        for column in &mut self.columns {
            bind_root(&mut column.expr.op, index);
        }
        for nested in self.selects.iter_mut().chain(&mut self.union_all) {
            // Not `repeat`: its paths are applied again to the nodes they find.
            if let IterationPlan::ForEach(e) | IterationPlan::ForEachOrNull(e) = &mut nested.iteration {
                bind_root(&mut e.op, index);
            }
        }
    }

    /// Merges nested selects that neither iterate nor union into their parent. Such a select
    /// yields exactly one row per parent row, so cross-joining it is the same as evaluating
    /// its columns in the parent's row; merging saves a row allocation and a join per level.
    fn flatten(&mut self) {
        for branch in &mut self.union_all {
            branch.flatten();
        }
        let mut kept = Vec::with_capacity(self.selects.len());
        for mut nested in std::mem::take(&mut self.selects) {
            nested.flatten();
            if matches!(nested.iteration, IterationPlan::None) && nested.union_all.is_empty() {
                self.columns.append(&mut nested.columns);
                kept.append(&mut nested.selects);
            } else {
                kept.push(nested);
            }
        }
        self.selects = kept;
    }
}

/// The slots a compiled select element fills, in column order (depth first).
fn collect_slots(plan: &SelectPlan) -> Vec<usize> {
    let mut out: Vec<usize> = plan.columns.iter().map(|c| c.slot).collect();
    for s in &plan.selects {
        out.extend(collect_slots(s));
    }
    if let Some(first) = plan.union_all.first() {
        out.extend(collect_slots(first));
    }
    out
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
