package tenants

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jmoiron/sqlx"
)

// Dataset is a named, slugged set of data of one organization, optionally read through one of
// its connections (its own or a share into it). Policies lists the policies that govern who
// reaches it (see reachable).
type Dataset struct {
	ID             string    `json:"id" db:"id"`
	Name           string    `json:"name" db:"name"`
	Slug           string    `json:"slug" db:"slug"`
	Description    string    `json:"description" db:"description"`
	Source         string    `json:"source" db:"source"`
	ConnectionID   *string   `json:"connection_id" db:"connection_id"`
	OrganizationID string    `json:"organization_id" db:"org_id"`
	Policies       []string  `json:"policies" db:"-"`
	CreatedAt      time.Time `json:"created_at" db:"created_at"`
	UpdatedAt      time.Time `json:"updated_at" db:"updated_at"`
}

// DatasetInput is the body of a create or a full-replacement update: a field left out is
// stored empty, but for Policies, which nil keeps (none on a create; an empty list removes
// them). ConnectionID "" means none.
type DatasetInput struct {
	Name         string
	Slug         string
	Description  string
	Source       string
	ConnectionID string
	Policies     *[]string
}

const datasetColumns = `id, name, slug, description, source, connection_id, org_id, created_at, updated_at`

var datasetSlug = regexp.MustCompile(`^[a-z0-9_-]{1,100}$`)

// checkDescription is CheckText for multi-line text: line breaks and tabs are allowed.
func checkDescription(s string, max int) string {
	if !utf8.ValidString(s) {
		return "must be valid UTF-8"
	}
	return CheckText(strings.Map(func(r rune) rune {
		if r == '\n' || r == '\r' || r == '\t' {
			return ' '
		}
		return r
	}, s), max)
}

// normalize validates in for p; connection_id must name a connection of p's organization that
// p reaches (see reachable), unless it is the dataset's connection already (prev), looked up in
// q (the transaction that then writes, so the connection cannot move in between: connections
// never change organization, and the foreign key catches one deleted meanwhile).
func (in *DatasetInput) normalize(ctx context.Context, q sqlx.ExtContext, p *Principal, prev *string) error {
	in.Name = strings.TrimSpace(in.Name)
	in.Slug = strings.TrimSpace(in.Slug)
	in.Source = strings.TrimSpace(in.Source)
	in.ConnectionID = strings.TrimSpace(in.ConnectionID)
	var errs FieldErrors
	errs.Add("name", checkName(in.Name, 255))
	switch {
	case in.Slug == "":
		errs.Add("slug", "is required: 1 to 100 lowercase letters, digits, _ or -, such as web_events")
	case !datasetSlug.MatchString(in.Slug):
		errs.Add("slug", "must be 1 to 100 lowercase letters, digits, _ or -, such as web_events")
	}
	errs.Add("description", checkDescription(in.Description, 4000))
	if in.Source != "" {
		if msg := checkURL(in.Source); msg != "" {
			errs.Add("source", "must be an absolute http or https URL such as https://data.example.com/events.csv")
		}
	}
	if in.ConnectionID != "" && (prev == nil || *prev != in.ConnectionID) {
		if _, err := reachConnection(ctx, q, p, in.ConnectionID, false); errors.Is(err, ErrNotFound) {
			errs.Add("connection_id", errNoSuchConnection(in.ConnectionID))
		} else if err != nil {
			return err
		}
	}
	return errs.Err()
}

func errNoSuchConnection(id string) string {
	return fmt.Sprintf("no connection with id %q exists in this organization (its own or shared into it)", id)
}

func errDatasetNotFound(id string) error {
	return Errorf(ErrNotFound, "dataset_not_found", "No dataset with id %q exists in this organization.", id)
}

func errDatasetSlugTaken(slug string) error {
	return Errorf(ErrConflict, "dataset_slug_taken",
		"A dataset with slug %q already exists in this organization; slugs are unique per organization.", slug)
}

// writeDatasetError maps a failed insert or update of d to the caller's error.
func writeDatasetError(err error, d Dataset, what string) error {
	switch {
	case err == nil:
		return nil
	case IsUniqueViolation(err):
		return errDatasetSlugTaken(d.Slug)
	case IsForeignKeyViolation(err) && d.ConnectionID != nil:
		// The connection was deleted after normalize found it.
		var errs FieldErrors
		errs.Add("connection_id", errNoSuchConnection(*d.ConnectionID))
		return errs.Err()
	}
	return fmt.Errorf("%s dataset: %w", what, err)
}

// reachDataset loads a dataset of p's organization that p reaches, for reading (write false)
// or for a change (see reach), with its policies.
func reachDataset(ctx context.Context, q sqlx.ExtContext, p *Principal, id string, write bool) (Dataset, error) {
	return reach(ctx, q, p, datasetPolicies, id, write, func(cond string, args []any) (Dataset, error) {
		d, err := getOne[Dataset](ctx, q, id, errDatasetNotFound(id), `SELECT `+datasetColumns+` FROM datasets
			WHERE id = ? AND org_id = ? AND `+cond, append([]any{id, p.OrgID}, args...)...)
		if err != nil {
			return d, err
		}
		policies, err := datasetPolicies.policiesOf(ctx, q, d.ID)
		d.Policies = policies[d.ID]
		return d.utc(), err
	})
}

// writableDataset is changeRow's find for a change by p (see reachDataset).
func writableDataset(p *Principal) func(context.Context, sqlx.ExtContext, string, string) (Dataset, error) {
	return func(ctx context.Context, q sqlx.ExtContext, _, id string) (Dataset, error) {
		return reachDataset(ctx, q, p, id, true)
	}
}

func (d Dataset) utc() Dataset {
	d.CreatedAt, d.UpdatedAt = d.CreatedAt.UTC(), d.UpdatedAt.UTC()
	return d
}

func (d *Dataset) apply(in DatasetInput) {
	d.Name, d.Slug, d.Description, d.Source, d.ConnectionID = in.Name, in.Slug, in.Description, in.Source, nil
	if in.ConnectionID != "" {
		id := in.ConnectionID
		d.ConnectionID = &id
	}
}

// ListDatasets pages through the caller's organization's datasets that it reaches (see
// reachable) in order of creation.
func (s *Store) ListDatasets(ctx context.Context, p *Principal, page PageQuery) (Page[Dataset], error) {
	if err := p.Require(DatasetsRead); err != nil {
		return Page[Dataset]{}, err
	}
	q, err := s.Reader(ctx)
	if err != nil {
		return Page[Dataset]{}, err
	}
	cond, args := datasetPolicies.reaching(p, false)
	where, args := `org_id = ? AND `+cond, append([]any{p.OrgID}, args...)
	if page.After != "" {
		where += ` AND id > ?`
		args = append(args, page.After)
	}
	rows := []Dataset{}
	err = sqlx.SelectContext(ctx, q, &rows, q.Rebind(`SELECT `+datasetColumns+` FROM datasets WHERE `+where+
		` ORDER BY id LIMIT ?`), append(args, page.Limit+1)...)
	if err != nil {
		return Page[Dataset]{}, fmt.Errorf("list datasets: %w", err)
	}
	rows, next := TrimPage(rows, page.Limit, func(d Dataset) string { return d.ID })
	if err := withPolicies(ctx, q, datasetPolicies, rows, func(d *Dataset) (string, *[]string) { return d.ID, &d.Policies }); err != nil {
		return Page[Dataset]{}, err
	}
	for i := range rows {
		rows[i] = rows[i].utc()
	}
	return Page[Dataset]{Items: rows, Next: next}, nil
}

// GetDataset returns one dataset of the caller's organization that it reaches; any other is
// ErrNotFound.
func (s *Store) GetDataset(ctx context.Context, p *Principal, id string) (Dataset, error) {
	if err := p.Require(DatasetsRead); err != nil {
		return Dataset{}, err
	}
	q, err := s.Reader(ctx)
	if err != nil {
		return Dataset{}, err
	}
	return reachDataset(ctx, q, p, id, false)
}

// CreateDataset adds a dataset to the caller's organization. A slug already used there is
// ErrConflict; a connection_id that names no connection of the organization the caller
// reaches is ErrInvalid; giving it policies needs policies:write.
func (s *Store) CreateDataset(ctx context.Context, p *Principal, in DatasetInput) (Dataset, error) {
	if err := p.Require(DatasetsWrite); err != nil {
		return Dataset{}, err
	}
	var d Dataset
	err := s.Write(ctx, func(tx *Tx) error {
		if err := in.normalize(ctx, tx, p, nil); err != nil {
			return err
		}
		now := Now()
		d = Dataset{ID: NewID(), OrganizationID: p.OrgID, CreatedAt: now, UpdatedAt: now}
		d.apply(in)
		var err error
		if d.Policies, err = checkPolicies(ctx, tx, p, in.Policies, nil); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, tx.Rebind(`INSERT INTO datasets (id, org_id, connection_id, name, slug, description, source, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`), d.ID, d.OrganizationID, d.ConnectionID, d.Name, d.Slug, d.Description, d.Source, now, now)
		if err := writeDatasetError(err, d, "insert"); err != nil {
			return err
		}
		if err := datasetPolicies.setPolicies(ctx, tx, d.ID, d.Policies); err != nil {
			return err
		}
		return recordEvent(ctx, tx, p, d.OrganizationID, EventDatasetCreated, d)
	})
	return d, err
}

// UpdateDataset replaces a dataset's fields in full, and its policies when given (changing
// them needs policies:write).
func (s *Store) UpdateDataset(ctx context.Context, p *Principal, id string, in DatasetInput) (Dataset, error) {
	d, err := changeRow(ctx, s, p.Require(DatasetsWrite), p.OrgID, id, writableDataset(p), func(tx *Tx, d *Dataset) (err error) {
		if err := in.normalize(ctx, tx, p, d.ConnectionID); err != nil {
			return err
		}
		if d.Policies, err = checkPolicies(ctx, tx, p, in.Policies, d.Policies); err != nil {
			return err
		}
		d.apply(in)
		d.UpdatedAt = Now()
		_, err = tx.ExecContext(ctx, tx.Rebind(`UPDATE datasets SET connection_id = ?, name = ?, slug = ?, description = ?, source = ?, updated_at = ?
			WHERE id = ? AND org_id = ?`), d.ConnectionID, d.Name, d.Slug, d.Description, d.Source, d.UpdatedAt, d.ID, d.OrganizationID)
		if err := writeDatasetError(err, *d, "update"); err != nil {
			return err
		}
		if err := datasetPolicies.setPolicies(ctx, tx, d.ID, d.Policies); err != nil {
			return err
		}
		return recordEvent(ctx, tx, p, d.OrganizationID, EventDatasetUpdated, d)
	})
	return d, err
}

// DeleteDataset deletes a dataset of the caller's organization and returns it as it was.
func (s *Store) DeleteDataset(ctx context.Context, p *Principal, id string) (Dataset, error) {
	d, err := changeRow(ctx, s, p.Require(DatasetsWrite), p.OrgID, id, writableDataset(p), func(tx *Tx, d *Dataset) (err error) {
		if _, err := tx.ExecContext(ctx, tx.Rebind(`DELETE FROM datasets WHERE id = ? AND org_id = ?`), d.ID, d.OrganizationID); err != nil {
			return fmt.Errorf("delete dataset: %w", err)
		}
		return recordEvent(ctx, tx, p, d.OrganizationID, EventDatasetDeleted, d)
	})
	return d, err
}
