"""Long lists of choices are rendered once and reused: the kept <option> elements must still escape what they
show and mark the right one selected."""

from web.ui.snapshot_view import render_options


def test_options_escape_keys_and_labels_and_mark_only_the_chosen_one_selected():
    options = render_options([("a&b", 'Åkeri "Nord" <AB>'), ("nordfrakt", "Nordfrakt AB"), ("nord", "Nord")])
    html = str(options.selecting("nord"))
    assert '<option value="a&amp;b">Åkeri &#34;Nord&#34; &lt;AB&gt;</option>' in html
    assert '<option value="nord" selected>Nord</option>' in html
    assert '<option value="nordfrakt">Nordfrakt AB</option>' in html  # a key that begins like the chosen one
    assert html.count(" selected") == 1
    assert 'value="a&amp;b" selected' in str(options.selecting("a&b"))


def test_a_value_not_among_the_options_selects_none_and_injects_nothing():
    options = render_options([("nordfrakt", "Nordfrakt AB")])
    for value in (None, "", "kvarnberg", '"><script>x</script>'):
        html = str(options.selecting(value))
        assert " selected" not in html
        assert "<script>" not in html
    assert options.keys == frozenset({"nordfrakt"})
