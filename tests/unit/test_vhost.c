/* Unit tests for src/local/vhost.c: domains by local address, greeting names, the -n cross checks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "local/vhost.h"

static void parse(struct domain_table *t, const char *text)
{
	struct buf errors;
	buf_init(&errors, 4096);
	FILE *fp = fmemopen((void *)text, strlen(text), "r");
	assert_non_null(fp);
	int n = domains_parse(t, fp, "domains", &errors);
	fclose(fp);
	if (n)
		fail_msg("%s", buf_cstr(&errors));
	buf_free(&errors);
}

static void test_lookups(void **state)
{
	struct domain_table t = { 0 };
	parse(&t,
	    "two.test ip=127.0.0.2 hostname=mx.two.test\n"
	    "main.test aliases=mail.main.test\n"
	    "three.test aliases=mail.three.test ip=127.0.0.3,::1\n"
	    "two-b.test ip=127.0.0.2\n"
	    "other.test\n");
	const struct domain *two = &t.v[0], *main_d = &t.v[1], *three = &t.v[2], *twob = &t.v[3];

	/* served on */
	assert_true(vhost_serves(main_d, "127.0.0.1"));
	assert_true(vhost_serves(main_d, "garbage"));
	assert_true(vhost_serves(two, "127.0.0.2"));
	assert_true(vhost_serves(two, "::ffff:127.0.0.2"));
	assert_false(vhost_serves(two, "127.0.0.3"));
	assert_false(vhost_serves(two, "not an address"));
	assert_true(vhost_serves(three, "0:0:0:0:0:0:0:1"));
	assert_true(vhost_domain_served(&t, "MAIL.three.test", "127.0.0.3"));
	assert_false(vhost_domain_served(&t, "mail.three.test", "127.0.0.1"));
	assert_true(vhost_domain_served(&t, "elsewhere.test", "127.0.0.1")); /* not local: relay rules decide */
	assert_true(vhost_domain_served(&t, "other.test", "127.0.0.2"));

	/* the domain of a bare user name: bound first (file order), else the first shared one */
	assert_ptr_equal(vhost_default_domain(&t, "127.0.0.2"), two);
	assert_ptr_equal(vhost_default_domain(&t, "127.0.0.3"), three);
	assert_ptr_equal(vhost_default_domain(&t, "::1"), three);
	assert_ptr_equal(vhost_default_domain(&t, "127.0.0.1"), main_d);
	assert_ptr_equal(vhost_default_domain(&t, "192.0.2.1"), main_d);
	(void)twob;

	/* greeting names */
	assert_string_equal(vhost_hostname(&t, "127.0.0.2", "global.test"), "mx.two.test");
	assert_string_equal(vhost_hostname(&t, "127.0.0.3", "global.test"), "global.test");
	assert_string_equal(vhost_hostname(&t, "127.0.0.1", "global.test"), "global.test");
	domains_free(&t);

	/* Only bound domains: an unbound address has no default domain. */
	parse(&t, "two.test ip=127.0.0.2\n");
	assert_null(vhost_default_domain(&t, "127.0.0.1"));
	domains_free(&t);
	assert_null(vhost_default_domain(&t, "127.0.0.1"));
}

static void write_file(const char *dir, const char *name, const char *text)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	FILE *fp = fopen(path, "w");
	assert_non_null(fp);
	fputs(text, fp);
	fclose(fp);
}

static void test_check(void **state)
{
	char dir[] = "/tmp/tsubame-vhost-XXXXXX";
	assert_non_null(mkdtemp(dir));
	write_file(dir, "tsubame.conf",
	    "hostname = mx.test\n"
	    "listen = 127.0.0.1:25 127.0.0.2:25\n"
	    "submission_listen = 127.0.0.3:587\n"
	    "hidden_ips = 127.0.0.4\n");
	write_file(dir, "domains",
	    "main.test aliases=mail.main.test\n"
	    "two.test ip=127.0.0.2\n"
	    "three.test ip=127.0.0.3\n"
	    "four.test ip=127.0.0.4\n"
	    "five.test ip=127.0.0.5,127.0.0.2\n");
	write_file(dir, "aliases",
	    "info@main.test x@main.test\n"
	    "sales@mail.main.test x@main.test\n"
	    "*@mail.main.test x@main.test\n");
	/* accounts: crypt hashes are not checked here */
	write_file(dir, "accounts",
	    "x\t$6$salt$hash\tX\tmain.test\t\t1\t0\t0\n"
	    "y\t$6$salt$hash\tY\tmail.main.test\t\t1\t0\t0\n"
	    "z\t$6$salt$hash\tZ\tgone.test\t\t1\t0\t0\n");
	char conf[512];
	snprintf(conf, sizeof(conf), "%s/tsubame.conf", dir);

	struct config c;
	struct buf errors;
	buf_init(&errors, 1 << 16);
	assert_int_equal(config_load(&c, conf, &errors), 0);
	struct local_tables t;
	assert_int_equal(local_tables_load(&t, &c, &errors), 0);
	int n = vhost_check(&c, &t, &errors);
	const char *e = buf_cstr(&errors);
	char want[1024];
	static const char *const lines[] = {
		"domains:4: ip=127.0.0.4 of four.test is in hidden_ips: that address never answers\n",
		"domains:5: ip=127.0.0.5 of five.test: no listen or submission_listen entry binds it\n",
		"aliases:2: mail.main.test is a host alias of main.test: write the alias as sales@main.test\n",
		"aliases:3: mail.main.test is a host alias of main.test: write the alias as *@main.test\n",
		"accounts:2: account y: mail.main.test is a host alias of main.test: write the domain as main.test\n",
		"accounts:3: account z: domain gone.test is not in the domains table\n",
	};
	for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
		snprintf(want, sizeof(want), "%s/%s", dir, lines[i]);
		if (!strstr(e, want))
			fail_msg("missing %s in:\n%s", want, e);
	}
	assert_int_equal(n, 6);
	local_tables_free(&t);
	config_free(&c);

	/* A '*' listener covers every address of its family. */
	write_file(dir, "tsubame.conf", "hostname = mx.test\nlisten = *:25\n");
	write_file(dir, "domains", "two.test ip=127.0.0.2\nsix.test ip=::1\n");
	write_file(dir, "aliases", "");
	write_file(dir, "accounts", "");
	buf_reset(&errors);
	assert_int_equal(config_load(&c, conf, &errors), 0);
	assert_int_equal(local_tables_load(&t, &c, &errors), 0);
	assert_int_equal(vhost_check(&c, &t, &errors), 1); /* ip_mode = ipv4: ::1 is not bound */
	assert_non_null(strstr(buf_cstr(&errors), "ip=::1 of six.test: no listen"));
	local_tables_free(&t);
	config_free(&c);

	/* Without %DOMAIN% in mailbox_path, demo@ of two domains would share one Maildir. */
	write_file(dir, "tsubame.conf", "hostname = mx.test\nlisten = *:25\nmailbox_path = /var/mail/%USERNAME%/Maildir\n");
	write_file(dir, "domains", "a.test\nb.test\n");
	write_file(dir, "accounts",
	    "demo\t$6$salt$hash\tX\ta.test\t\t1\t0\t0\n"
	    "other\t$6$salt$hash\tX\ta.test\t\t1\t0\t0\n"
	    "demo\t$6$salt$hash\tX\tb.test\t\t1\t0\t0\n");
	buf_reset(&errors);
	assert_int_equal(config_load(&c, conf, &errors), 0);
	assert_int_equal(local_tables_load(&t, &c, &errors), 0);
	assert_int_equal(vhost_check(&c, &t, &errors), 1);
	snprintf(want, sizeof(want), "%s/accounts:3: demo@b.test would share the Maildir /var/mail/demo/Maildir with "
	    "demo@a.test (line 1): put %%DOMAIN%% in mailbox_path\n", dir);
	assert_string_equal(buf_cstr(&errors), want);
	local_tables_free(&t);
	config_free(&c);
	buf_free(&errors);

	char cmd[600];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_lookups),
		cmocka_unit_test(test_check),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
