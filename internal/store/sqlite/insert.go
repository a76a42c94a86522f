package sqlite

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"strings"
)

// inserter writes rows of a fixed column list with multi-row INSERT statements executed on the
// write transaction's driver connection: database/sql's conversion of each argument cost as
// much as SQLite's own work for a point. A column whose value is zero in every row of a
// statement (most metrics of most sources, the dimensions a view does not have) is written as
// a literal instead of a parameter; each statement text is prepared once per transaction.
type inserter struct {
	table   string
	cols    []string
	zero    []string // per column: its zero value as SQL ("0", "''", "x''"), "" if always bound
	tail    string   // after the VALUES list (ON CONFLICT …)
	perStmt int

	vals     []driver.Value // n rows of len(cols) values
	n        int
	variants int // statements prepared in this transaction
	args     []driver.NamedValue
}

func newInserter(table string, cols, zero []string, tail string, perStmt int) *inserter {
	return &inserter{table: table, cols: cols, zero: zero, tail: tail, perStmt: perStmt}
}

// maxVariants bounds the statements an inserter prepares per transaction for different sets
// of zero columns; beyond it every column is bound.
const maxVariants = 16

// reset starts a transaction: it drops the rows not written (of a transaction that failed).
func (w *inserter) reset() {
	clear(w.vals)
	w.vals, w.n, w.variants = w.vals[:0], 0, 0
}

// add appends a row (len(cols) values, in order); a full statement goes out.
func (w *inserter) add(ctx context.Context, tx *writeTx, vals ...driver.Value) error {
	w.vals = append(w.vals, vals...)
	if w.n++; w.n == w.perStmt {
		return w.flush(ctx, tx)
	}
	return nil
}

func isZero(v driver.Value) bool {
	switch x := v.(type) {
	case int64:
		return x == 0
	case string:
		return x == ""
	case []byte:
		return len(x) == 0
	}
	return false
}

// flush writes the rows added since the last statement.
func (w *inserter) flush(ctx context.Context, tx *writeTx) error {
	if w.n == 0 {
		return nil
	}
	nc := len(w.cols)
	var bound uint64 // columns with a non-zero value (bit c), or always bound
	for c := range nc {
		if w.zero[c] == "" {
			bound |= 1 << c
		}
	}
	for i, v := range w.vals {
		if c := i % nc; bound&(1<<c) == 0 && !isZero(v) {
			bound |= 1 << c
		}
	}
	k := stmtKey{w, w.n, bound}
	if _, ok := tx.stmts[k]; !ok {
		if w.variants >= maxVariants { // rows of ever new zero patterns: bind every column
			k.bound = 1<<nc - 1
			bound = k.bound
		} else {
			w.variants++
		}
	}
	w.args = w.args[:0]
	for i, v := range w.vals {
		if bound&(1<<(i%nc)) != 0 {
			w.args = append(w.args, driver.NamedValue{Ordinal: len(w.args) + 1, Value: v})
		}
	}
	w.vals, w.n = w.vals[:0], 0
	if err := tx.exec(ctx, k, w.text, w.args); err != nil {
		return fmt.Errorf("cannot write %s: %w", w.table, err)
	}
	clear(w.args) // drop references to the values
	return nil
}

// stmtKey identifies the text of an inserter's statement: n rows, the columns of bound as
// parameters and the others as their zero literals.
type stmtKey struct {
	w     *inserter
	n     int
	bound uint64
}

// text returns the statement of k.
func (w *inserter) text(k stmtKey) string {
	var b strings.Builder
	b.WriteString("INSERT INTO " + w.table + " (" + strings.Join(w.cols, ", ") + ") VALUES ")
	for r := range k.n {
		if r > 0 {
			b.WriteString(", ")
		}
		b.WriteByte('(')
		for c := range w.cols {
			if c > 0 {
				b.WriteString(", ")
			}
			if k.bound&(1<<c) == 0 {
				b.WriteString(w.zero[c])
			} else {
				b.WriteByte('?')
			}
		}
		b.WriteByte(')')
	}
	b.WriteString(w.tail)
	return b.String()
}

// writeTx is a write transaction with its connection, for statements executed on the driver
// connection directly (inserter).
type writeTx struct {
	*sql.Tx
	conn  *sql.Conn
	stmts map[stmtKey]driver.Stmt
}

// exec runs statement k (its text from text) with args on the transaction's driver
// connection; each statement is prepared once per transaction.
func (t *writeTx) exec(ctx context.Context, k stmtKey, text func(stmtKey) string, args []driver.NamedValue) error {
	return t.conn.Raw(func(dc any) error {
		st, ok := t.stmts[k]
		if !ok {
			p, ok := dc.(driver.ConnPrepareContext)
			if !ok {
				return fmt.Errorf("driver connection %T cannot prepare", dc)
			}
			var err error
			if st, err = p.PrepareContext(ctx, text(k)); err != nil {
				return err
			}
			t.stmts[k] = st
		}
		ex, ok := st.(driver.StmtExecContext)
		if !ok {
			return fmt.Errorf("driver statement %T cannot execute", st)
		}
		_, err := ex.ExecContext(ctx, args)
		return err
	})
}

// closeStmts closes the statements exec prepared.
func (t *writeTx) closeStmts() {
	if len(t.stmts) == 0 {
		return
	}
	t.conn.Raw(func(any) error {
		for q, st := range t.stmts {
			st.Close()
			delete(t.stmts, q)
		}
		return nil
	})
}
