/* Unit tests for src/local/accounts.c: the manual's format, import/export, hashing, index, errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <crypt.h>
#include <cmocka.h>

#include "local/accounts.h"

/* A syntactically valid hash for tables that never check passwords (hashing is slow). */
#define FAKE_HASH "$6$saltsalt$0123456789abcdefABCDEF"

static FILE *text_fp(const char *text)
{
	FILE *fp = fmemopen((void *)text, strlen(text), "r");
	assert_non_null(fp);
	return fp;
}

static int parse_text(struct account_table *t, const char *text, struct buf *errors)
{
	FILE *fp = text_fp(text);
	int n = accounts_parse(t, fp, "accounts", errors);
	fclose(fp);
	return n;
}

static void domains_fixture(struct domain_table *d)
{
	struct buf errors;
	const char *text = "abc.co.jp aliases=mail.abc.co.jp\nsmall.test max_accounts=2\ndef.co.jp\n";
	FILE *fp = text_fp(text);
	buf_init(&errors, 1024);
	assert_int_equal(domains_parse(d, fp, "domains", &errors), 0);
	fclose(fp);
	buf_free(&errors);
}

static void test_parse(void **state)
{
	const char *text =
		"# accounts\n"
		"Taro\t" FAKE_HASH "\tYamada, Taro\tABC.co.jp\t/home/taro\t1\t0\t1048576\r\n"
		"\n"
		"hanako\t" FAKE_HASH "\t\tabc.co.jp\t\t0\t1\n"
		"info.desk\t" FAKE_HASH "\tInfo\tdef.co.jp\t\t1\t1\t0\n";
	struct account_table t = { 0 };
	struct buf errors;

	buf_init(&errors, 4096);
	assert_int_equal(parse_text(&t, text, &errors), 0);
	assert_int_equal(t.n, 3);
	const struct account *a = accounts_find(&t, "taro", "abc.co.jp");
	assert_non_null(a);
	assert_string_equal(a->name, "Taro");
	assert_string_equal(a->full_name, "Yamada, Taro");
	assert_string_equal(a->domain, "abc.co.jp");
	assert_string_equal(a->home, "/home/taro");
	assert_int_equal(a->smtp_auth, 1);
	assert_int_equal(a->apop, 0);
	assert_int_equal(a->mailbox_limit, 1048576); /* the CR is not part of the number */
	assert_int_equal(a->line, 2);
	a = accounts_find(&t, "HANAKO", "ABC.CO.JP");
	assert_non_null(a);
	assert_int_equal(a->mailbox_limit, 0); /* 7 columns */
	assert_int_equal(a->apop, 1);
	assert_string_equal(a->home, "");
	assert_non_null(accounts_find(&t, "Info.Desk", "def.co.jp"));
	assert_null(accounts_find(&t, "taro", "def.co.jp"));
	assert_null(accounts_find(&t, "nobody", "abc.co.jp"));
	assert_int_equal(accounts_count_in_domain(&t, "abc.co.jp"), 2);
	accounts_free(&t);
	buf_free(&errors);
}

struct ecase {
	const char *line;
	const char *error;
};

static const struct ecase parse_errors[] = {
	{ "a\t" FAKE_HASH "\tA\tabc.co.jp\t\t1\t0", NULL },
	{ "a\t" FAKE_HASH "\tA\tabc.co.jp\t\t1", "expected 8 TAB-separated columns, got 6" },
	{ "a\t" FAKE_HASH "\tA\tabc.co.jp\t\t1\t0\t0\textra", "got more than 8" },
	{ "a b\t" FAKE_HASH "\tA\tabc.co.jp\t\t1\t0\t0", "invalid account name \"a b\"" },
	{ "a@b\t" FAKE_HASH "\tA\tabc.co.jp\t\t1\t0\t0", "invalid account name" },
	{ ".a\t" FAKE_HASH "\tA\tabc.co.jp\t\t1\t0\t0", "invalid account name" },
	{ "a..b\t" FAKE_HASH "\tA\tabc.co.jp\t\t1\t0\t0", "invalid account name" },
	{ "a/b\t" FAKE_HASH "\tA\tabc.co.jp\t\t1\t0\t0", "invalid account name" },
	{ "\t" FAKE_HASH "\tA\tabc.co.jp\t\t1\t0\t0", "invalid account name" },
	{ "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\t" FAKE_HASH "\tA\tabc.co.jp\t\t1\t0\t0",
	  "invalid account name" },
	{ "a\t" FAKE_HASH "\tA\tabc_co.jp\t\t1\t0\t0", "invalid domain name" },
	{ "a\t" FAKE_HASH "\tA\t\t\t1\t0\t0", "invalid domain name" },
	{ "a\t" FAKE_HASH "\tA\tabc.co.jp\t\t2\t0\t0", "SMTP-auth flag must be 0 or 1" },
	{ "a\t" FAKE_HASH "\tA\tabc.co.jp\t\t1\tyes\t0", "APOP flag must be 0 or 1" },
	{ "a\t" FAKE_HASH "\tA\tabc.co.jp\t\t1\t0\t-5", "mailbox limit must be a non-negative" },
	{ "a\t" FAKE_HASH "\tA\tabc.co.jp\t\t1\t0\t12x", "mailbox limit" },
	{ "a\tplain\tA\tabc.co.jp\t\t1\t0\t0", "is not a crypt hash" },
	{ "a\t$6$\tA\tabc.co.jp\t\t1\t0\t0", "is not a crypt hash" },
	{ "DUP\t" FAKE_HASH "\tA\tabc.co.jp\t\t1\t0\t0", "duplicate account DUP@abc.co.jp (first on line 1)" },
};

static void test_parse_errors(void **state)
{
	for (size_t i = 0; i < sizeof(parse_errors) / sizeof(parse_errors[0]); i++) {
		const struct ecase *c = &parse_errors[i];
		struct account_table t = { 0 };
		struct buf errors;
		char text[1024];

		buf_init(&errors, 4096);
		snprintf(text, sizeof(text), "dup\t" FAKE_HASH "\tDup\tabc.co.jp\t\t1\t0\t0\n%s\n", c->line);
		int n = parse_text(&t, text, &errors);
		if (c->error == NULL) {
			if (n != 0 || t.n != 2)
				fail_msg("case %zu: %s", i, buf_cstr(&errors));
		} else {
			if (n != 1 || t.n != 1)
				fail_msg("case %zu (%s): %d errors, %zu accounts", i, c->line, n, t.n);
			if (strncmp(buf_cstr(&errors), "accounts:2: ", 12) != 0 || !strstr(buf_cstr(&errors), c->error))
				fail_msg("case %zu: message %s lacks %s", i, buf_cstr(&errors), c->error);
		}
		accounts_free(&t);
		buf_free(&errors);
	}
}

static void test_index_many(void **state)
{
	struct account_table t = { 0 };
	struct buf errors, text;
	enum { N = 20000 };

	buf_init(&errors, 4096);
	buf_init(&text, 16 << 20);
	for (int i = 0; i < N; i++)
		buf_appendf(&text, "user%d\t" FAKE_HASH "\tUser %d\tdom%d.test\t\t1\t0\t0\n", i, i, i % 7);
	assert_int_equal(parse_text(&t, buf_cstr(&text), &errors), 0);
	assert_int_equal(t.n, N);
	for (int i = 0; i < N; i++) {
		char name[32], dom[32];
		snprintf(name, sizeof(name), "USER%d", i);
		snprintf(dom, sizeof(dom), "Dom%d.Test", i % 7);
		const struct account *a = accounts_find(&t, name, dom);
		if (a == NULL || a != &t.v[i])
			fail_msg("lookup %d", i);
		snprintf(dom, sizeof(dom), "dom%d.test", (i + 1) % 7);
		if (accounts_find(&t, name, dom) != NULL)
			fail_msg("false hit %d", i);
	}
	/* Removal keeps the index right for everything that moved. */
	assert_int_equal(accounts_remove(&t, "user0", "dom0.test"), 0);
	assert_int_equal(accounts_remove(&t, "user0", "dom0.test"), -1);
	assert_null(accounts_find(&t, "user0", "dom0.test"));
	assert_ptr_equal(accounts_find(&t, "user19999", "dom0.test"), &t.v[N - 2]);
	struct account a = { .name = "new", .password = FAKE_HASH, .domain = "Dom1.test" };
	assert_int_equal(accounts_add(&t, &a), 0);
	assert_int_equal(accounts_add(&t, &a), -1);
	assert_string_equal(accounts_find(&t, "NEW", "dom1.test")->domain, "dom1.test");
	assert_string_equal(accounts_find(&t, "NEW", "dom1.test")->full_name, "");
	accounts_free(&t);
	buf_free(&errors);
	buf_free(&text);
}

static void test_passwords(void **state)
{
	char *h = password_hash("s3cret pass");
	assert_non_null(h);
	assert_true(password_is_hash(h));
	assert_true(strncmp(h, "$y$", 3) == 0 || strncmp(h, "$6$", 3) == 0);
	assert_true(password_check(h, "s3cret pass"));
	assert_false(password_check(h, "s3cret pasS"));
	assert_false(password_check(h, ""));
	char *h2 = password_hash("s3cret pass");
	assert_string_not_equal(h, h2); /* salted */
	free(h);
	free(h2);

	/* A SHA-512 hash made elsewhere is accepted. */
	struct crypt_data cd;
	memset(&cd, 0, sizeof(cd));
	const char *sha = crypt_r("old password", "$6$abcdefgh$", &cd);
	assert_non_null(sha);
	assert_true(password_is_hash(sha));
	assert_true(password_check(sha, "old password"));
	assert_false(password_check(sha, "old passwor"));

	assert_false(password_is_hash(""));
	assert_false(password_is_hash("plain"));
	assert_false(password_is_hash("*"));
	assert_false(password_is_hash("$1$abcdefgh$xxxxxxxx")); /* MD5 crypt is not accepted */
	assert_false(password_check("", ""));
	assert_false(password_check("*LK*", ""));
	assert_false(password_check("$6$x", "x"));
}

static void test_import_export(void **state)
{
	struct domain_table d = { 0 };
	struct account_table t = { 0 };
	struct buf errors;

	domains_fixture(&d);
	buf_init(&errors, 8192);
	const char *in =
		"taro\tpassword1\tYamada, Taro\tabc.co.jp\t/home/taro\t1\t1\t5000\n"
		"hanako\t" FAKE_HASH "\tHanako\tMAIL.abc.co.jp\t\t0\t0\r\n"
		"ghost\tpw\tGhost\tnowhere.test\t\t1\t0\t0\n"
		"a\tpw\tA\tsmall.test\t\t1\t0\t0\n"
		"b\tpw\tB\tsmall.test\t\t1\t0\t0\n"
		"c\tpw\tC\tsmall.test\t\t1\t0\t0\n"
		"bad name\tpw\tX\tabc.co.jp\t\t1\t0\t0\n"
		"flag\tpw\tX\tabc.co.jp\t\t3\t0\t0\n"
		"limit\tpw\tX\tabc.co.jp\t\t1\t0\t-1\n"
		"empty\t\tX\tabc.co.jp\t\t1\t0\t0\n";
	FILE *fp = text_fp(in);
	assert_int_equal(accounts_import(&t, &d, fp, "import.txt", &errors), 6);
	fclose(fp);
	const char *e = buf_cstr(&errors);
	assert_non_null(strstr(e, "import.txt:3: domain \"nowhere.test\" does not exist\n"));
	assert_non_null(strstr(e, "import.txt:6: domain small.test is full (max_accounts=2)\n"));
	assert_non_null(strstr(e, "import.txt:7: invalid account name"));
	assert_non_null(strstr(e, "import.txt:8: SMTP-auth flag"));
	assert_non_null(strstr(e, "import.txt:9: mailbox limit"));
	assert_non_null(strstr(e, "import.txt:10: empty password"));
	assert_int_equal(t.n, 4);

	const struct account *taro = accounts_find(&t, "taro", "abc.co.jp");
	assert_non_null(taro);
	assert_true(password_is_hash(taro->password));
	assert_true(password_check(taro->password, "password1"));
	assert_int_equal(taro->mailbox_limit, 5000);
	const struct account *hanako = accounts_find(&t, "hanako", "abc.co.jp");
	assert_non_null(hanako); /* the host alias became the domain */
	assert_string_equal(hanako->password, FAKE_HASH); /* a hash is kept */

	/* Replacing an existing account does not count against max_accounts and keeps the order. */
	buf_reset(&errors);
	fp = text_fp("a\t" FAKE_HASH "\tA again\tsmall.test\t\t0\t0\t7\n");
	assert_int_equal(accounts_import(&t, &d, fp, "again", &errors), 0);
	fclose(fp);
	assert_int_equal(t.n, 4);
	assert_string_equal(t.v[2].full_name, "A again");
	assert_int_equal(t.v[2].mailbox_limit, 7);

	/* Export, then parse the export as an accounts file: the same table. */
	char *out = NULL;
	size_t outlen = 0;
	FILE *ofp = open_memstream(&out, &outlen);
	accounts_export(&t, ofp);
	fclose(ofp);
	struct account_table u = { 0 };
	assert_int_equal(parse_text(&u, out, &errors), 0);
	assert_int_equal(u.n, t.n);
	for (size_t i = 0; i < t.n; i++) {
		assert_string_equal(u.v[i].name, t.v[i].name);
		assert_string_equal(u.v[i].password, t.v[i].password);
		assert_string_equal(u.v[i].full_name, t.v[i].full_name);
		assert_string_equal(u.v[i].domain, t.v[i].domain);
		assert_string_equal(u.v[i].home, t.v[i].home);
		assert_int_equal(u.v[i].smtp_auth, t.v[i].smtp_auth);
		assert_int_equal(u.v[i].apop, t.v[i].apop);
		assert_int_equal(u.v[i].mailbox_limit, t.v[i].mailbox_limit);
	}
	/* ... and importing the export again changes nothing (hashes are kept). */
	FILE *rfp = text_fp(out);
	assert_int_equal(accounts_import(&u, &d, rfp, "export", &errors), 0);
	fclose(rfp);
	assert_int_equal(u.n, t.n);
	assert_string_equal(accounts_find(&u, "taro", "abc.co.jp")->password, taro->password);
	accounts_free(&u);
	free(out);
	accounts_free(&t);
	domains_free(&d);
	buf_free(&errors);
}

static void test_save_load(void **state)
{
	char dir[] = "/tmp/tsubame-accounts-XXXXXX";
	assert_non_null(mkdtemp(dir));
	char path[256];
	snprintf(path, sizeof(path), "%s/accounts", dir);
	struct account_table t = { 0 }, u = { 0 };
	struct buf errors;
	buf_init(&errors, 4096);

	assert_int_equal(accounts_load(&t, path, &errors), 0); /* missing = empty */
	struct account a = { .name = "postmaster", .password = FAKE_HASH, .full_name = "PM", .domain = "abc.co.jp",
		.home = "", .smtp_auth = 1, .mailbox_limit = 10 };
	assert_int_equal(accounts_add(&t, &a), 0);
	assert_int_equal(accounts_save(&t, path), 0);
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600); /* hashes are secrets */
	assert_int_equal(accounts_load(&u, path, &errors), 0);
	assert_int_equal(u.n, 1);
	assert_non_null(accounts_find(&u, "Postmaster", "abc.co.jp"));
	accounts_free(&u);
	accounts_free(&t);
	buf_free(&errors);
	unlink(path);
	rmdir(dir);
}

static void test_name_valid(void **state)
{
	assert_true(account_name_valid("taro"));
	assert_true(account_name_valid("Yamada.Taro"));
	assert_true(account_name_valid("a+tag"));
	assert_true(account_name_valid("o'brien"));
	assert_false(account_name_valid("#x"));
	assert_false(account_name_valid("a."));
	assert_false(account_name_valid("a\"b"));
	assert_false(account_name_valid("a:b"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse),
		cmocka_unit_test(test_parse_errors),
		cmocka_unit_test(test_index_many),
		cmocka_unit_test(test_passwords),
		cmocka_unit_test(test_import_export),
		cmocka_unit_test(test_save_load),
		cmocka_unit_test(test_name_valid),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
